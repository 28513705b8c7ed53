package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubcommandSkipsGlobalFlagValues(t *testing.T) {
	cmd, rest := subcommand([]string{"--root", "/run/x", "--log", "create", "--systemd-cgroup", "create", "--bundle", "/b", "id"})
	if cmd != "create" || flagValue(rest, "--bundle", "-b") != "/b" {
		t.Fatalf("got %q %v", cmd, rest)
	}
}

func TestEditDropsCapabilityKeepsNumbers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	in := `{"process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"]}},"linux":{"resources":{"memory":{"limit":9223372036854771712}}}}`
	if err := os.WriteFile(cfg, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rewrite([]string{"--root", "/r", "create", "--bundle", dir, "c1"}); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(cfg)
	s := string(out)
	if strings.Contains(s, "CAP_SYS_RESOURCE") || !strings.Contains(s, "CAP_CHOWN") || !strings.Contains(s, "9223372036854771712") {
		t.Fatalf("rewritten config: %s", s)
	}
}

func TestExecProcessFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(p, []byte(`{"capabilities":{"permitted":["CAP_SYS_RESOURCE","CAP_KILL"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rewrite([]string{"exec", "--process", p, "c1"}); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(p)
	if strings.Contains(string(out), "CAP_SYS_RESOURCE") || !strings.Contains(string(out), "CAP_KILL") {
		t.Fatalf("rewritten process: %s", out)
	}
}

func TestOOMScoreAdjBelowOwnIsRaisedAboveIsKept(t *testing.T) {
	own, ok := ownOOMScoreAdj()
	if !ok || own > 900 {
		t.Skipf("own oom_score_adj %d unusable for this test", own)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	write := func(adj int64) {
		in := fmt.Sprintf(`{"process":{"oomScoreAdj":%d,"capabilities":{"bounding":["CAP_KILL"]}}}`, adj)
		if err := os.WriteFile(cfg, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(own - 1)
	if err := rewrite([]string{"create", "--bundle", dir, "c1"}); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(cfg)
	if !strings.Contains(string(out), fmt.Sprintf(`"oomScoreAdj":%d`, own)) {
		t.Fatalf("oomScoreAdj %d not raised to %d: %s", own-1, own, out)
	}
	write(own + 100)
	if err := rewrite([]string{"create", "--bundle", dir, "c1"}); err != nil {
		t.Fatal(err)
	}
	out, _ = os.ReadFile(cfg)
	if !strings.Contains(string(out), fmt.Sprintf(`"oomScoreAdj": %d`, own+100)) && !strings.Contains(string(out), fmt.Sprintf(`"oomScoreAdj":%d`, own+100)) {
		t.Fatalf("a higher oomScoreAdj changed: %s", out)
	}
}
