package kube

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func mustPKCS1(t *testing.T, c tls.Certificate) []byte {
	t.Helper()
	k, ok := c.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		t.Skip("httptest key is not RSA")
	}
	return x509.MarshalPKCS1PrivateKey(k)
}
