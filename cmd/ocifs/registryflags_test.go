package main

import (
	"testing"

	"github.com/ocifs/ocifs/image"
	"github.com/spf13/pflag"
)

func TestRegistryFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want image.RegistryOptions
	}{
		{"defaults", nil, image.RegistryOptions{}},
		{"all", []string{"--creds", "u:p", "--authfile", "/a.json", "--cert-dir", "/certs", "--tls-verify=false"},
			image.RegistryOptions{Creds: "u:p", AuthFile: "/a.json", CertDir: "/certs", SkipTLSVerify: true}},
		{"tls-verify given true", []string{"--tls-verify"}, image.RegistryOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f registryFlags
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			f.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("Parse(%q): %v", tc.args, err)
			}
			got := f.options()
			if got.Creds != tc.want.Creds || got.AuthFile != tc.want.AuthFile || got.CertDir != tc.want.CertDir || got.SkipTLSVerify != tc.want.SkipTLSVerify {
				t.Errorf("options() after %q = %+v, want %+v", tc.args, got, tc.want)
			}
		})
	}
}
