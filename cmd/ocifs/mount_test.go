package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseMount checks how flags and -o options become the mount's
// options: -o can turn dev and suid on and off again, ro is implied,
// rw and the options ocifs sets itself are refused, the rest is passed
// on in order.
func TestParseMount(t *testing.T) {
	root := os.Geteuid() == 0
	vectors := []struct {
		name      string
		flags     mountFlags
		dev, suid bool
		allow     bool
		extra     []string
		wantErr   string // substring; "" means success
		rootOnly  bool   // dev or suid: refused for everyone else
	}{
		{name: "defaults"},
		{name: "ro is implied", flags: mountFlags{options: []string{"ro"}}},
		{name: "flags", flags: mountFlags{dev: true, suid: true, allowOther: true}, dev: true, suid: true, allow: true, rootOnly: true},
		{name: "-o dev,suid", flags: mountFlags{options: []string{"dev,suid"}}, dev: true, suid: true, rootOnly: true},
		{name: "later -o wins", flags: mountFlags{dev: true, options: []string{"nodev", "suid,nosuid"}}},
		{name: "allow_other", flags: mountFlags{options: []string{"allow_other"}}, allow: true},
		{name: "others passed on in order", flags: mountFlags{options: []string{"noexec,,noatime", "allow_root"}}, extra: []string{"noexec", "noatime", "allow_root"}},
		{name: "rw refused", flags: mountFlags{options: []string{"noexec,rw"}}, wantErr: "always read-only"},
		{name: "fsname refused", flags: mountFlags{options: []string{"fsname=x"}}, wantErr: "ocifs sets it"},
		{name: "subtype refused", flags: mountFlags{options: []string{"subtype=x"}}, wantErr: "ocifs sets it"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseMount("./layout:tag", "mnt", tc.flags)
			wantErr := tc.wantErr
			if tc.rootOnly && !root {
				wantErr = "need root"
			}
			if wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), wantErr) {
					t.Fatalf("parseMount(%+v) = %v, want an error containing %q", tc.flags, err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseMount(%+v) = %v", tc.flags, err)
			}
			o := cfg.fs
			if o.Dev != tc.dev || o.Suid != tc.suid || o.AllowOther != tc.allow || !slices.Equal(o.Extra, tc.extra) {
				t.Errorf("parseMount(%+v) = dev %v suid %v allow_other %v extra %q, want %v %v %v %q",
					tc.flags, o.Dev, o.Suid, o.AllowOther, o.Extra, tc.dev, tc.suid, tc.allow, tc.extra)
			}
			if o.FsName != "./layout:tag" || cfg.ref != "./layout:tag" {
				t.Errorf("source = %q, ref = %q, want the reference as given", o.FsName, cfg.ref)
			}
			if !filepath.IsAbs(cfg.dir) || filepath.Base(cfg.dir) != "mnt" {
				t.Errorf("mount point = %q, want an absolute path ending in mnt", cfg.dir)
			}
		})
	}
}

// TestMountHelpTellsWhereTheLogIs: a user who met EIO finds in
// `ocifs mount --help` where the daemon's log is and how to read it.
func TestMountHelpTellsWhereTheLogIs(t *testing.T) {
	c := newMountCmd()
	var help strings.Builder
	c.SetOut(&help)
	c.SetArgs([]string{"--help"})
	if err := c.Execute(); err != nil {
		t.Fatalf("ocifs mount --help: %v", err)
	}
	for _, want := range []string{"journalctl -t ocifs", "$XDG_STATE_HOME/ocifs/ocifs.log", "--log-file", "--syslog", "EIO"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("ocifs mount --help does not mention %q:\n%s", want, help.String())
		}
	}
	if f := c.Flags().Lookup("syslog"); f == nil || f.DefValue != "true" {
		t.Errorf("--syslog = %v, want a flag that defaults to true", f)
	}
}
