package main

import (
	"github.com/ocifs/ocifs/image"
	"github.com/spf13/pflag"
)

// registryFlags are the flags of every command that reads docker://
// references, named and meant as skopeo's (skopeo-copy(1),
// containers-auth.json(5), containers-certs.d(5)).
type registryFlags struct {
	creds     string
	authFile  string
	certDir   string
	tlsVerify bool
}

// register adds the flags to fs.
func (f *registryFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.creds, "creds", "", "use `USER[:PASS]` for the registry instead of the auth file")
	fs.StringVar(&f.authFile, "authfile", "", "read registry credentials from `PATH` (default: $REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, then ~/.docker/config.json; credential helpers included)")
	fs.StringVar(&f.certDir, "cert-dir", "", "trust the *.crt in `DIR` and present its client.cert/client.key to the registry (default: /etc/containers/certs.d/HOST[:PORT], /etc/docker/certs.d/HOST[:PORT])")
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "verify the registry's certificate; false also allows plain HTTP")
}

// options returns the registry options the flags ask for.
func (f *registryFlags) options() image.RegistryOptions {
	return image.RegistryOptions{
		Creds:         f.creds,
		AuthFile:      f.authFile,
		CertDir:       f.certDir,
		SkipTLSVerify: !f.tlsVerify,
	}
}
