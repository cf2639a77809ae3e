package render

import (
	"slices"
	"strings"
	"testing"
)

// RenderWithout skips exactly the templates that read an absent file, and
// renders them again (not from the prior result) once the file is back; a
// file missing without being declared absent still fails the render.
func TestRenderWithout(t *testing.T) {
	set, err := Compile([]Template{
		{Path: "db.conf", Text: `password={{ object "db" }}`},
		{Path: "both.conf", Text: `{{ object "db" }}:{{ object "maybe" }}`},
		{Path: "maybe.conf", Text: `token={{ object "maybe" }}`},
	}, []string{"db", "maybe"})
	if err != nil {
		t.Fatal(err)
	}
	absent := map[string]bool{"maybe": true}
	res, err := set.RenderWithout(map[string][]byte{"db": []byte("pw")}, nil, absent)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Skipped, []string{"both.conf", "maybe.conf"}) || len(res.Files) != 1 || res.Files[0].Path != "db.conf" {
		t.Fatalf("skipped %v, files %v", res.Skipped, res.Files)
	}
	if got := res.Payload(nil, 0o644); len(got) != 1 {
		t.Errorf("payload %d files, want db.conf only", len(got))
	}
	res2, err := set.RenderWithout(map[string][]byte{"db": []byte("pw"), "maybe": []byte("tok")}, res, absent)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Skipped) != 0 || len(res2.Files) != 3 || !slices.Equal(res2.Rendered, []string{"both.conf", "maybe.conf"}) {
		t.Fatalf("with maybe back: skipped %v, rendered %v, %d files", res2.Skipped, res2.Rendered, len(res2.Files))
	}
	if string(res2.Files[1].Data) != "pw:tok" {
		t.Errorf("both.conf = %q", res2.Files[1].Data)
	}
	if _, err := set.Render(map[string][]byte{"db": []byte("pw")}, nil); err == nil || !strings.Contains(err.Error(), `object "maybe" is not in this fetch`) {
		t.Errorf("Render without maybe: %v, want the missing-object error", err)
	}
}
