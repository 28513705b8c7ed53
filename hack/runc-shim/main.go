// Command runc-shim is an OCI runtime wrapper for machines whose capability bounding set lacks
// CAP_SYS_RESOURCE (some VMs). There runc cannot start
//   - a --privileged container ("unable to apply caps: operation not permitted"): privileged asks for every
//     capability;
//   - a container whose oomScoreAdj is below the caller's (the kubelet gives pause -998): lowering it needs
//     CAP_SYS_RESOURCE ("failed to update /proc/self/oom_score_adj: Permission denied").
//
// The shim deletes CAP_SYS_RESOURCE from the container's config.json (`create`, `run`) and from the process file
// (`exec --process FILE`), raises a lower oomScoreAdj to its own, then execs the real runc with the same
// arguments. Where the bounding set has CAP_SYS_RESOURCE it changes nothing.
//
// The real runc is $AIGW_RUNC, else <this binary>.real when it exists (how the kind node installs it: the
// shim as /usr/local/sbin/runc, runc as runc.real), else /usr/sbin/runc (Debian's runc, for dockerd).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dropped are the capabilities removed from every set; only ones absent from the bounding set belong here.
var dropped = map[string]bool{"CAP_SYS_RESOURCE": true}

// capSets are the keys of an OCI process's "capabilities" object.
var capSets = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// globalWithValue are runc's global flags that take a separate value, so the value is not the subcommand.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

func main() {
	if !lacksSysResource() {
		execRunc()
	}
	if err := rewrite(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "runc-shim: %v\n", err)
		os.Exit(1)
	}
	execRunc()
}

func execRunc() {
	real := realRunc()
	if err := syscall.Exec(real, append([]string{real}, os.Args[1:]...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-shim: exec %s: %v\n", real, err)
		os.Exit(1)
	}
}

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/self/status's CapBnd.
const capSysResource = 24

// lacksSysResource reports whether this process's bounding set lacks CAP_SYS_RESOURCE (unreadable: assume so).
func lacksSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err != nil || bits&(1<<capSysResource) == 0
		}
	}
	return true
}

// ownOOMScoreAdj is this process's oom_score_adj, the lowest a child can set without CAP_SYS_RESOURCE.
func ownOOMScoreAdj() (int64, bool) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return v, err == nil
}

func realRunc() string {
	if r := os.Getenv("AIGW_RUNC"); r != "" {
		return r
	}
	if self, err := os.Executable(); err == nil {
		if _, err := os.Stat(self + ".real"); err == nil {
			return self + ".real"
		}
	}
	return "/usr/sbin/runc"
}

// rewrite finds the subcommand and edits the file it reads: <bundle>/config.json for create/run, the
// --process file for exec. Other subcommands are passed through untouched.
func rewrite(args []string) error {
	cmd, rest := subcommand(args)
	switch cmd {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return edit(filepath.Join(bundle, "config.json"), true)
	case "exec":
		if p := flagValue(rest, "--process", "-p"); p != "" {
			return edit(p, false)
		}
	}
	return nil
}

func subcommand(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) > 0 && a[0] == '-' {
			if globalWithValue[a] {
				i++
			}
			continue
		}
		return a, args[i+1:]
	}
	return "", nil
}

func flagValue(args []string, long, short string) string {
	for i, a := range args {
		if (a == long || a == short) && i+1 < len(args) {
			return args[i+1]
		}
		for _, name := range []string{long, short} {
			if len(a) > len(name)+1 && a[:len(name)+1] == name+"=" {
				return a[len(name)+1:]
			}
		}
	}
	return ""
}

// edit removes the dropped capabilities from the file's process (config.json: under "process"; a process
// file: at the top level). Numbers are kept exact (UseNumber); an unchanged file is not rewritten.
func edit(path string, nested bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	proc := doc
	if nested {
		p, ok := doc["process"].(map[string]any)
		if !ok {
			return nil
		}
		proc = p
	}
	changed := clampOOMScoreAdj(proc)
	caps, _ := proc["capabilities"].(map[string]any)
	for _, set := range capSets {
		list, ok := caps[set].([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			if s, ok := c.(string); ok && dropped[s] {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

// clampOOMScoreAdj raises the process's oomScoreAdj to this process's own when it is lower (a lower one needs
// CAP_SYS_RESOURCE); reports whether it changed.
func clampOOMScoreAdj(proc map[string]any) bool {
	n, ok := proc["oomScoreAdj"].(json.Number)
	if !ok {
		return false
	}
	want, err := n.Int64()
	own, known := ownOOMScoreAdj()
	if err != nil || !known || want >= own {
		return false
	}
	proc["oomScoreAdj"] = json.Number(strconv.FormatInt(own, 10))
	return true
}
