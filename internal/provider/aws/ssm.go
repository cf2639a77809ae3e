package aws

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ssinjector/ssi/internal/provider"
)

// ssmAPI is the narrow seam over the SSM client.
type ssmAPI interface {
	GetParameters(ctx context.Context, in *ssm.GetParametersInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
}

// ssmBatchSize is the most names one GetParameters takes.
const ssmBatchSize = 10

// ssmRequest is one distinct name (with selector) in a GetParameters call.
type ssmRequest struct {
	// full is what is sent: name, or name:version, or name:label.
	full string
	// key identifies the parameter regardless of how it is spelt.
	key   string
	items []*item
}

// ssmSelector is the GetParameters name of a target, as upstream builds
// it: a version wins over a label.
func ssmSelector(t target) string {
	switch {
	case t.version != "":
		return t.name + ":" + t.version
	case t.label != "":
		return t.name + ":" + t.label
	}
	return t.name
}

// ssmKey reduces a parameter name or ARN (with or without selector) to a
// key two spellings of the same parameter share. Names without a leading
// "/" and with one share a key; that only keeps them in separate calls.
func ssmKey(name string) string {
	if strings.HasPrefix(name, "arn:") {
		if parts := strings.SplitN(name, ":", 6); len(parts) == 6 {
			name = strings.TrimPrefix(parts[5], "parameter")
		}
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	return strings.TrimLeft(name, "/")
}

// ssmBatches groups requests into GetParameters calls of at most ten, no
// two requests of one call naming the same parameter, so every answer
// matches exactly one request.
func ssmBatches(items []*item, failover bool) [][]*ssmRequest {
	var reqs []*ssmRequest
	byFull := map[string]*ssmRequest{}
	for _, it := range items {
		full := ssmSelector(it.target(failover))
		r := byFull[full]
		if r == nil {
			r = &ssmRequest{full: full, key: ssmKey(it.target(failover).name)}
			byFull[full] = r
			reqs = append(reqs, r)
		}
		r.items = append(r.items, it)
	}
	var batches [][]*ssmRequest
	var keys []map[string]bool
next:
	for _, r := range reqs {
		for i, b := range batches {
			if len(b) < ssmBatchSize && !keys[i][r.key] {
				batches[i] = append(b, r)
				keys[i][r.key] = true
				continue next
			}
		}
		batches = append(batches, []*ssmRequest{r})
		keys = append(keys, map[string]bool{r.key: true})
	}
	return batches
}

// fetchParameters resolves SSM items in one region: GetParameters with
// decryption, ten names a call. The answer carries versions, so a
// rotation check costs the same calls as a fetch.
func (p *Provider) fetchParameters(ctx context.Context, cl *regionClients, items []*item, failover bool) {
	batches := ssmBatches(items, failover)
	provider.Parallel(len(batches), p.opts.Concurrency, func(i int) {
		b := batches[i]
		names := make([]string, len(b))
		for j, r := range b {
			names[j] = r.full
		}
		out, err := cl.ssm.GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})
		if err != nil {
			for _, r := range b {
				ce := newCallError(cl.region, fmt.Sprintf("GetParameters of parameter %q", r.full), err)
				for _, it := range r.items {
					it.setErr(ce)
				}
			}
			return
		}
		invalid := map[string]bool{}
		for _, n := range out.InvalidParameters {
			invalid[n] = true
		}
		found := map[string]ssmtypes.Parameter{}
		for _, prm := range out.Parameters {
			k := ssmKey(aws.ToString(prm.Name))
			if aws.ToString(prm.Name) == "" {
				k = ssmKey(aws.ToString(prm.ARN))
			}
			found[k] = prm
			if ak := ssmKey(aws.ToString(prm.ARN)); ak != "" {
				if _, ok := found[ak]; !ok {
					found[ak] = prm
				}
			}
		}
		for _, r := range b {
			prm, ok := found[r.key]
			for _, it := range r.items {
				switch {
				case invalid[r.full]:
					it.setErr(codeError(cl.region, fmt.Sprintf("GetParameters of parameter %q", r.full), "ParameterNotFound",
						"listed in InvalidParameters: no such parameter, version or label"))
				case ok:
					it.setValue(strconv.FormatInt(prm.Version, 10), []byte(aws.ToString(prm.Value)))
				default:
					it.setErr(&callError{region: cl.region, reason: provider.ReasonUnavailable,
						err: fmt.Errorf("GetParameters of parameter %q: neither returned nor listed as invalid", r.full)})
				}
			}
		}
	})
}
