// Package kube reads one pod from the API server with nothing but net/http: the plugin's kubeconfig is parsed
// minimally (server, CA, bearer token or client certificate) and read afresh on every call, so a rotated token or
// certificate written by the installer is picked up by the next pod.
package kube

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// kubeconfig holds the subset of a kubeconfig file the plugin uses.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
			TLSServerName            string `json:"tls-server-name"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			Token                 string `json:"token"`
			TokenFile             string `json:"tokenFile"`
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKey             string `json:"client-key"`
			ClientKeyData         string `json:"client-key-data"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// Endpoint is what one API call needs, resolved from the kubeconfig.
type Endpoint struct {
	Server string
	Token  string
	TLS    *tls.Config
}

// LoadEndpoint reads and resolves the kubeconfig at path (current context, or the only cluster/user when
// there is no context). Relative file references are resolved against the kubeconfig's directory.
func LoadEndpoint(path string) (*Endpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read kubeconfig %s: %w", path, err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s is not valid YAML: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}

	clusterName, userName := "", ""
	if kc.CurrentContext != "" {
		found := false
		for _, c := range kc.Contexts {
			if c.Name == kc.CurrentContext {
				clusterName, userName, found = c.Context.Cluster, c.Context.User, true
			}
		}
		if !found {
			return nil, fmt.Errorf("kubeconfig %s: current-context %q is not among its contexts", path, kc.CurrentContext)
		}
	} else if len(kc.Contexts) == 1 {
		clusterName, userName = kc.Contexts[0].Context.Cluster, kc.Contexts[0].Context.User
	}

	ep := &Endpoint{TLS: &tls.Config{MinVersion: tls.VersionTLS12}}
	clusterFound := false
	for _, c := range kc.Clusters {
		if c.Name != clusterName && !(clusterName == "" && len(kc.Clusters) == 1) {
			continue
		}
		clusterFound = true
		ep.Server = strings.TrimRight(c.Cluster.Server, "/")
		ep.TLS.ServerName = c.Cluster.TLSServerName
		ep.TLS.InsecureSkipVerify = c.Cluster.InsecureSkipTLSVerify
		var pem []byte
		switch {
		case c.Cluster.CertificateAuthorityData != "":
			if pem, err = base64.StdEncoding.DecodeString(c.Cluster.CertificateAuthorityData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: certificate-authority-data is not base64: %w", path, err)
			}
		case c.Cluster.CertificateAuthority != "":
			if pem, err = os.ReadFile(rel(c.Cluster.CertificateAuthority)); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cannot read certificate-authority: %w", path, err)
			}
		}
		if len(pem) > 0 && !ep.TLS.InsecureSkipVerify {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kubeconfig %s: the certificate authority holds no PEM certificate", path)
			}
			ep.TLS.RootCAs = pool
		}
	}
	if !clusterFound || ep.Server == "" {
		return nil, fmt.Errorf("kubeconfig %s names no cluster server", path)
	}
	if !strings.HasPrefix(ep.Server, "https://") && !strings.HasPrefix(ep.Server, "http://") {
		return nil, fmt.Errorf("kubeconfig %s: server %q is not an http(s) URL", path, ep.Server)
	}

	for _, u := range kc.Users {
		if u.Name != userName && !(userName == "" && len(kc.Users) == 1) {
			continue
		}
		switch {
		case u.User.Token != "":
			ep.Token = u.User.Token
		case u.User.TokenFile != "":
			tok, err := os.ReadFile(rel(u.User.TokenFile))
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cannot read tokenFile: %w", path, err)
			}
			ep.Token = strings.TrimSpace(string(tok))
		}
		cert, key, err := pair(u.User.ClientCertificateData, u.User.ClientKeyData, rel(u.User.ClientCertificate), rel(u.User.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		if cert != nil {
			kp, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: client certificate: %w", path, err)
			}
			ep.TLS.Certificates = []tls.Certificate{kp}
		}
	}
	return ep, nil
}

func pair(certData, keyData, certFile, keyFile string) (cert, key []byte, err error) {
	load := func(data, file, what string) ([]byte, error) {
		if data != "" {
			b, err := base64.StdEncoding.DecodeString(data)
			if err != nil {
				return nil, fmt.Errorf("%s-data is not base64: %w", what, err)
			}
			return b, nil
		}
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("cannot read %s: %w", what, err)
			}
			return b, nil
		}
		return nil, nil
	}
	if cert, err = load(certData, certFile, "client-certificate"); err != nil {
		return nil, nil, err
	}
	if key, err = load(keyData, keyFile, "client-key"); err != nil {
		return nil, nil, err
	}
	if (cert == nil) != (key == nil) {
		return nil, nil, fmt.Errorf("client-certificate and client-key must be given together")
	}
	return cert, key, nil
}
