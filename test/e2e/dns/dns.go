// Package dns is a minimal authoritative DNS responder for the end-to-end
// cluster, standing in for CoreDNS (which has no image here). It answers A
// queries for Service names of the cluster domain
// (<service>.<namespace>.svc.<domain>) with the Service's cluster IP, from a
// lookup function backed by the API server, and NXDOMAIN for everything
// else: the cluster has no way out, so there is nothing to forward to. This
// is what lets the seed guide's `vaultAddress: http://vault.vault.svc:8200`
// resolve unchanged inside pods.
package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// LookupFunc returns the cluster IP of a Service, ok=false when it does not
// exist (or has no cluster IP).
type LookupFunc func(ctx context.Context, namespace, service string) (ip netip.Addr, ok bool, err error)

// Server answers queries for Services of Domain.
type Server struct {
	// Domain is the cluster domain, e.g. "cluster.local".
	Domain string
	Lookup LookupFunc
	// Log receives one line per query; nil logs nothing.
	Log *log.Logger

	mu    sync.Mutex
	udp   net.PacketConn
	tcp   net.Listener
	wg    sync.WaitGroup
	close bool
}

// ListenAndServe binds UDP and TCP on addr (host:port) and serves until
// Close.
// With port 0 the kernel picks a free UDP port, and TCP must bind the same
// number; when another process already holds that number on TCP, it tries
// again with a new UDP port (a few times) instead of failing.
func (s *Server) ListenAndServe(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dns: address %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" {
		attempts = 20
	}
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		_ = pc.Close()
		if i+1 >= attempts || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
		}
	}
	s.mu.Lock()
	s.udp, s.tcp = pc, ln
	s.mu.Unlock()
	s.wg.Add(2)
	go s.serveUDP(pc)
	go s.serveTCP(ln)
	return nil
}

// Addr is the bound UDP address.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udp.LocalAddr()
}

// Close stops serving and waits for the loops to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.close = true
	var errs []error
	if s.udp != nil {
		errs = append(errs, s.udp.Close())
	}
	if s.tcp != nil {
		errs = append(errs, s.tcp.Close())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) serveUDP(pc net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		resp := s.answer(buf[:n])
		if resp != nil {
			_, _ = pc.WriteTo(resp, from)
		}
	}
}

func (s *Server) serveTCP(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				resp := s.answer(msg)
				if resp == nil {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp))) //nolint:gosec // a DNS message fits in 16 bits (TCP length prefix)
				if _, err := c.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer builds the response to one query message; nil drops it.
func (s *Server) answer(msg []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return s.reply(h, nil, dnsmessage.RCodeFormatError, nil)
	}
	name := strings.ToLower(q.Name.String())
	rcode, ip := s.resolve(name)
	s.logf("%s %s -> %s %v", q.Type, name, rcode, ip)
	var answers []dnsmessage.AResource
	if rcode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA && ip.Is4() {
		answers = append(answers, dnsmessage.AResource{A: ip.As4()})
	}
	return s.reply(h, &q, rcode, answers)
}

// resolve maps a fully qualified name to an address: NXDOMAIN outside the
// cluster domain or for Services that do not exist.
func (s *Server) resolve(name string) (dnsmessage.RCode, netip.Addr) {
	suffix := ".svc." + strings.Trim(s.Domain, ".") + "."
	if !strings.HasSuffix(name, suffix) {
		return dnsmessage.RCodeNameError, netip.Addr{}
	}
	parts := strings.Split(strings.TrimSuffix(name, suffix), ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return dnsmessage.RCodeNameError, netip.Addr{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ip, ok, err := s.Lookup(ctx, parts[1], parts[0])
	if err != nil {
		s.logf("lookup %s/%s: %v", parts[1], parts[0], err)
		return dnsmessage.RCodeServerFailure, netip.Addr{}
	}
	if !ok {
		return dnsmessage.RCodeNameError, netip.Addr{}
	}
	return dnsmessage.RCodeSuccess, ip
}

func (s *Server) reply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, answers []dnsmessage.AResource) []byte {
	rh := dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		OpCode:             h.OpCode,
		Authoritative:      true,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
		RCode:              rcode,
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil
		}
		if err := b.Question(*q); err != nil {
			return nil
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil
	}
	for _, a := range answers {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, a); err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Printf(format, args...)
	}
}
