package aws

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/ssinjector/ssi/internal/provider"
)

// smAPI is the narrow seam over the Secrets Manager client.
type smAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

const (
	// smBatchSize is the most secret IDs one BatchGetSecretValue takes.
	smBatchSize = 20
	// stageCurrent is the staging label of a secret's current version.
	stageCurrent = "AWSCURRENT"
)

// fetchSecrets resolves Secrets Manager items in one region with the
// fewest calls:
//
//   - items that read the current version (no objectVersion, label empty
//     or AWSCURRENT) go through BatchGetSecretValue, 20 secrets a call,
//     when at least two distinct secrets need it and the identity may call
//     it; the answer carries versions and values, so changed and unchanged
//     objects alike cost one call per 20;
//   - every other item already written is checked with DescribeSecret
//     (one per distinct secret) and fetched with GetSecretValue only when
//     the version carrying its label moved;
//   - items never written are fetched with GetSecretValue.
func (p *Provider) fetchSecrets(ctx context.Context, cl *regionClients, items []*item, failover bool) {
	var batchable, single []*item
	for _, it := range items {
		t := it.target(failover)
		if t.version == "" && (t.label == "" || t.label == stageCurrent) {
			batchable = append(batchable, it)
		} else {
			single = append(single, it)
		}
	}
	if names := distinctNames(batchable, failover); len(names) >= 2 && p.batchAllowed(cl.batchKey) {
		if p.batchGet(ctx, cl, batchable, names, failover) {
			for _, it := range batchable {
				if !it.res.done {
					// Neither a value nor an error came back for it.
					single = append(single, it)
				}
			}
		} else {
			single = append(single, batchable...)
		}
	} else {
		single = append(single, batchable...)
	}
	p.singleGet(ctx, cl, single, failover)
}

func distinctNames(items []*item, failover bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range items {
		n := it.target(failover).name
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// batchAllowed reports whether BatchGetSecretValue may be tried for an
// identity and region: not after a denial, until BatchReprobe passed.
func (p *Provider) batchAllowed(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, denied := p.batchOff[key]
	if !denied {
		return true
	}
	if p.opts.Clock.Since(at) < p.opts.BatchReprobe {
		return false
	}
	delete(p.batchOff, key)
	return true
}

func (p *Provider) disableBatch(key string) {
	p.mu.Lock()
	p.batchOff[key] = p.opts.Clock.Now()
	p.mu.Unlock()
}

// batchResult is one BatchGetSecretValue call's answer.
type batchResult struct {
	values []smtypes.SecretValueEntry
	errors []smtypes.APIErrorType
	err    error
}

// batchGet fetches the items' secrets with BatchGetSecretValue. It returns
// false, having set nothing, when the identity may not call it; the denial
// is remembered so later cycles go straight to the per-secret calls.
func (p *Provider) batchGet(ctx context.Context, cl *regionClients, items []*item, names []string, failover bool) bool {
	var chunks [][]string
	for i := 0; i < len(names); i += smBatchSize {
		chunks = append(chunks, names[i:min(i+smBatchSize, len(names))])
	}
	results := make([]batchResult, len(chunks))
	call := func(i int) {
		r := &results[i]
		in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: chunks[i]}
		for {
			out, err := cl.sm.BatchGetSecretValue(ctx, in)
			if err != nil {
				r.err = err
				return
			}
			r.values = append(r.values, out.SecretValues...)
			r.errors = append(r.errors, out.Errors...)
			if aws.ToString(out.NextToken) == "" {
				return
			}
			in.NextToken = out.NextToken
		}
	}
	// The first call probes whether the identity may batch at all.
	call(0)
	if results[0].err != nil && batchUnsupported(results[0].err) {
		p.disableBatch(cl.batchKey)
		return false
	}
	if len(chunks) > 1 {
		provider.Parallel(len(chunks)-1, p.opts.Concurrency, func(i int) { call(i + 1) })
	}

	chunkOf := map[string]int{}
	for i, c := range chunks {
		for _, n := range c {
			chunkOf[n] = i
		}
	}
	for _, it := range items {
		name := it.target(failover).name
		r := results[chunkOf[name]]
		what := fmt.Sprintf("BatchGetSecretValue of secret %q", name)
		if r.err != nil {
			it.setErr(newCallError(cl.region, what, r.err))
			continue
		}
		if e, ok := matchBatchError(name, r.errors); ok {
			it.setErr(codeError(cl.region, what, aws.ToString(e.ErrorCode), aws.ToString(e.Message)))
			continue
		}
		if v, ok := matchBatchValue(name, r.values); ok {
			it.setValue(aws.ToString(v.VersionId), secretBytes(v.SecretString, v.SecretBinary))
		}
	}
	return true
}

// sameSecret reports whether a requested secret ID (name, full ARN or
// partial ARN without the random suffix) denotes the secret answered.
func sameSecret(req, name, arn string) bool {
	if req == name || req == arn {
		return true
	}
	// A partial ARN lacks the "-XXXXXX" suffix of the full one.
	return strings.HasPrefix(req, "arn:") && strings.HasPrefix(arn, req+"-") && len(arn) == len(req)+7
}

func matchBatchValue(req string, vs []smtypes.SecretValueEntry) (smtypes.SecretValueEntry, bool) {
	for _, v := range vs {
		if sameSecret(req, aws.ToString(v.Name), aws.ToString(v.ARN)) {
			return v, true
		}
	}
	return smtypes.SecretValueEntry{}, false
}

func matchBatchError(req string, es []smtypes.APIErrorType) (smtypes.APIErrorType, bool) {
	for _, e := range es {
		if aws.ToString(e.SecretId) == req {
			return e, true
		}
	}
	return smtypes.APIErrorType{}, false
}

// secretBytes is SecretString when set, else SecretBinary, as upstream.
func secretBytes(s *string, b []byte) []byte {
	if s != nil {
		return []byte(*s)
	}
	return b
}

// describeResult is one DescribeSecret answer.
type describeResult struct {
	stages map[string][]string
	err    *callError
}

// getKey is one distinct GetSecretValue request.
type getKey struct {
	name, version, stage string
}

// singleGet resolves items with DescribeSecret and GetSecretValue.
func (p *Provider) singleGet(ctx context.Context, cl *regionClients, items []*item, failover bool) {
	if len(items) == 0 {
		return
	}
	// Version checks for items already written.
	var describe []string
	described := map[string]*describeResult{}
	for _, it := range items {
		t := it.target(failover)
		if it.current != "" && t.version == "" {
			if _, ok := described[t.name]; !ok {
				described[t.name] = &describeResult{}
				describe = append(describe, t.name)
			}
		}
	}
	provider.Parallel(len(describe), p.opts.Concurrency, func(i int) {
		name := describe[i]
		out, err := cl.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		if err != nil {
			described[name].err = newCallError(cl.region, fmt.Sprintf("DescribeSecret of secret %q", name), err)
			return
		}
		described[name].stages = out.VersionIdsToStages
	})

	var gets []getKey
	want := map[getKey][]*item{}
	for _, it := range items {
		t := it.target(failover)
		k := getKey{name: t.name, version: t.version, stage: t.label}
		if d := described[t.name]; d != nil && it.current != "" && t.version == "" {
			if d.err != nil {
				it.setErr(d.err)
				continue
			}
			label := t.label
			if label == "" {
				label = stageCurrent
			}
			v := versionWithStage(d.stages, label)
			if v != "" && v == it.current {
				it.setUnchanged()
				continue
			}
			if v != "" {
				k = getKey{name: t.name, version: v}
			}
		}
		if _, ok := want[k]; !ok {
			gets = append(gets, k)
		}
		want[k] = append(want[k], it)
	}
	provider.Parallel(len(gets), p.opts.Concurrency, func(i int) {
		k := gets[i]
		in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(k.name)}
		what := fmt.Sprintf("GetSecretValue of secret %q", k.name)
		if k.version != "" {
			in.VersionId = aws.String(k.version)
			what += fmt.Sprintf(" version %q", k.version)
		}
		if k.stage != "" {
			in.VersionStage = aws.String(k.stage)
			what += fmt.Sprintf(" stage %q", k.stage)
		}
		out, err := cl.sm.GetSecretValue(ctx, in)
		for _, it := range want[k] {
			if err != nil {
				it.setErr(newCallError(cl.region, what, err))
				continue
			}
			it.setValue(aws.ToString(out.VersionId), secretBytes(out.SecretString, out.SecretBinary))
		}
	})
}

// versionWithStage returns the version ID carrying a staging label.
func versionWithStage(stages map[string][]string, label string) string {
	for v, ls := range stages {
		for _, l := range ls {
			if l == label {
				return v
			}
		}
	}
	return ""
}
