package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kind says why a pod could not be read; the plugin turns it into a CNI error code.
type Kind string

const (
	KindKubeconfig   Kind = "kubeconfig"   // the kubeconfig cannot be read or is incomplete
	KindUnreachable  Kind = "unreachable"  // no HTTP answer (connection, TLS, timeout)
	KindServerError  Kind = "server error" // 5xx or 429 until api_timeout ran out
	KindUnauthorized Kind = "unauthorized" // 401: the token or certificate is not accepted
	KindForbidden    Kind = "forbidden"    // 403: RBAC does not allow get pods
	KindNotFound     Kind = "not found"    // 404: no such pod
	KindBadResponse  Kind = "bad response" // any other status, or a body that is not a pod
)

// LookupError is a failed pod lookup.
type LookupError struct {
	Kind      Kind
	Namespace string
	Name      string
	Detail    string
}

func (e *LookupError) Error() string {
	return fmt.Sprintf("cannot read pod %s/%s from the API server: %s: %s", e.Namespace, e.Name, e.Kind, e.Detail)
}

// Retryable reports whether a later attempt (by the runtime) may succeed.
func (e *LookupError) Retryable() bool { return e.Kind == KindUnreachable || e.Kind == KindServerError }

// Backoff bounds between attempts; the whole lookup never outlives the caller's timeout.
var (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = time.Second
	finalSlot    = 50 * time.Millisecond // time left for the last attempt
)

// Session names the file a lookup resumes its TLS session from and saves the newest one to (session.go), and tells
// afterwards whether the lookup's connection resumed one.
type Session struct {
	Path    string
	Resumed bool // set by GetPod: the last connection resumed the stored session
	Used    bool // set by GetPod: the file was consulted (false with a client certificate, or no Path)
}

// GetPod reads the pod's JSON with the kubeconfig at kubeconfigPath (read afresh). Transport errors and 5xx/429
// answers are retried with backoff until timeout; 401, 403 and 404 are final at once. With a session (nil: none),
// the TLS session with the API server is resumed from its file and the newest one saved there; not with a client
// certificate, whose identity a resumed session would carry: the file would become a credential.
func GetPod(ctx context.Context, kubeconfigPath, namespace, name string, timeout time.Duration, session *Session) ([]byte, error) {
	fail := func(k Kind, format string, a ...any) error {
		return &LookupError{Kind: k, Namespace: namespace, Name: name, Detail: fmt.Sprintf(format, a...)}
	}
	ep, err := LoadEndpoint(kubeconfigPath)
	if err != nil {
		return nil, fail(KindKubeconfig, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if session != nil && session.Path != "" && len(ep.TLS.Certificates) == 0 {
		f := &sessionFile{path: session.Path, server: ep.Server}
		ep.TLS.ClientSessionCache, ep.TLS.VerifyConnection = f, f.observe
		session.Used = true
		defer func() {
			session.Resumed = f.didResume()
			// Best effort: a session that cannot be saved only costs the next process a full handshake.
			_ = f.save()
		}()
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     ep.TLS,
		TLSHandshakeTimeout: timeout,
		DisableKeepAlives:   true,
	}}
	u := ep.Server + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(name)

	backoff := firstBackoff
	attempts := 0
	var last error
	for {
		attempts++
		body, retryAfter, err := getOnce(ctx, client, u, ep.Token, fail)
		if err == nil {
			return body, nil
		}
		var le *LookupError
		if errors.As(err, &le) && !le.Retryable() {
			return nil, err
		}
		// An attempt cut short by the deadline says less than the failure before it (a TLS or connection
		// error): keep that one for the message.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		wait := backoff
		if retryAfter > wait {
			wait = retryAfter
		}
		// Use the whole api_timeout: the last wait is shortened so one more attempt fits before the deadline.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl)-finalSlot < wait {
			wait = time.Until(dl) - finalSlot
			if wait <= 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		backoff = min(backoff*2, maxBackoff)
	}
	le := last.(*LookupError)
	le.Detail = fmt.Sprintf("%s (gave up after %d attempts within api_timeout %s)", le.Detail, attempts, timeout)
	return nil, le
}

func getOnce(ctx context.Context, client *http.Client, u, token string, fail func(Kind, string, ...any) error) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fail(KindKubeconfig, "bad request URL %s: %v", u, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "asm-cni")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fail(KindUnreachable, "GET %s: %v", u, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, 0, fail(KindUnreachable, "reading the answer of GET %s: %v", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, 0, nil
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, 0, fail(KindUnauthorized, "HTTP 401 from %s: %s (check the token or client certificate in the kubeconfig)", u, statusMessage(body))
	case resp.StatusCode == http.StatusForbidden:
		return nil, 0, fail(KindForbidden, "HTTP 403 from %s: %s (the plugin's service account needs get on pods)", u, statusMessage(body))
	case resp.StatusCode == http.StatusNotFound:
		return nil, 0, fail(KindNotFound, "HTTP 404 from %s: %s", u, statusMessage(body))
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, retryAfter(resp), fail(KindServerError, "HTTP %d from %s: %s", resp.StatusCode, u, statusMessage(body))
	default:
		return nil, 0, fail(KindBadResponse, "HTTP %d from %s: %s", resp.StatusCode, u, statusMessage(body))
	}
}

// statusMessage extracts a Kubernetes Status message from an error body, or a short excerpt of it.
func statusMessage(body []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return st.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "empty body"
	}
	return s
}

func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
