package vault

import (
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// HonoursKeep implements provider.Keeper: the groups whose objects are all
// in Request.Keep (a certificate before its renewal point) are not read,
// so a PUT or POST that issues something (pki/issue) is not repeated while
// its previous answer is valid.
func (p *Provider) HonoursKeep() bool { return true }

var _ provider.Keeper = (*Provider)(nil)

// String names a group as provider.Object.Group: method and path.
func (g groupKey) String() string { return g.method + " " + g.path }

// keptGroups returns the groups of the class whose every object is in
// req.Keep and has a version in req.Current (so Unchanged can stand); a
// group kept only in part is read, so its objects stay from one response.
func keptGroups(c *spc.Class, req provider.Request) map[groupKey]bool {
	if len(req.Keep) == 0 {
		return nil
	}
	kept := map[groupKey]bool{}
	broken := map[groupKey]bool{}
	for i := range c.Vault.Objects {
		o := &c.Vault.Objects[i]
		gk := groupOf(o)
		_, known := req.Current[o.ObjectName]
		if req.Keep[o.ObjectName] && known && !broken[gk] {
			kept[gk] = true
			continue
		}
		broken[gk] = true
		delete(kept, gk)
	}
	return kept
}

// allKept reports whether every group of the class is kept.
func allKept(c *spc.Class, kept map[groupKey]bool) bool {
	if len(kept) == 0 {
		return false
	}
	for i := range c.Vault.Objects {
		if !kept[groupOf(&c.Vault.Objects[i])] {
			return false
		}
	}
	return true
}
