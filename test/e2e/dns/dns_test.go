package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestResolvesServicesOfTheClusterDomain(t *testing.T) {
	services := map[string]netip.Addr{
		"vault/vault":        netip.MustParseAddr("10.0.0.42"),
		"default/kubernetes": netip.MustParseAddr("10.0.0.1"),
	}
	s := &Server{Domain: "cluster.local", Lookup: func(_ context.Context, ns, svc string) (netip.Addr, bool, error) {
		if ns == "broken" {
			return netip.Addr{}, false, errors.New("api down")
		}
		ip, ok := services[ns+"/"+svc]
		return ip, ok, nil
	}}
	if err := s.ListenAndServe("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr().String())
		}}
		tests := map[string]struct {
			name     string
			want     string
			notFound bool
		}{
			"service":                 {name: "vault.vault.svc.cluster.local.", want: "10.0.0.42"},
			"upper case":              {name: "KUBERNETES.default.svc.cluster.local.", want: "10.0.0.1"},
			"missing service":         {name: "nope.vault.svc.cluster.local.", notFound: true},
			"outside the domain":      {name: "example.com.", notFound: true},
			"too few labels":          {name: "vault.svc.cluster.local.", notFound: true},
			"search path miss":        {name: "vault.vault.svc.production.svc.cluster.local.", notFound: true},
			"lookup error is a fault": {name: "x.broken.svc.cluster.local."},
		}
		for name, tc := range tests {
			t.Run(network+"/"+name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				addrs, err := r.LookupHost(ctx, tc.name)
				switch {
				case tc.want != "":
					if err != nil || len(addrs) != 1 || addrs[0] != tc.want {
						t.Fatalf("LookupHost(%s) = %v, %v; want [%s]", tc.name, addrs, err, tc.want)
					}
				case tc.notFound:
					var de *net.DNSError
					if !errors.As(err, &de) || !de.IsNotFound {
						t.Fatalf("LookupHost(%s) = %v, %v; want not found", tc.name, addrs, err)
					}
				default:
					var de *net.DNSError
					if !errors.As(err, &de) || de.IsNotFound {
						t.Fatalf("LookupHost(%s) = %v, %v; want a server failure", tc.name, addrs, err)
					}
				}
			})
		}
	}
}
