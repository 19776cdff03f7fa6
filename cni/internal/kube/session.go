package kube

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/asm-cni/asm-cni/cni/internal/atomicfile"
)

// A plugin process lives for one CNI call, so every pod lookup used to open its connection with a full TLS handshake.
// sessionFile lets the next process resume the TLS session of the last one instead (TLS 1.3 PSK with a fresh key
// exchange; TLS 1.2 sessions, which would reuse their secret, are not kept): the API server then neither sends nor
// signs its certificate chain, and the plugin does not verify one. The session is a one-entry tls.ClientSessionCache
// persisted in a file of the plugin's state directory.
//
// Verification is never weakened: crypto/tls only offers a stored session to the server it was made with (the cache
// key, and here also the kubeconfig's server URL) when the session's server certificate is unexpired, matches the
// server name and chains to a CA of the kubeconfig as it is now; a server that cannot decrypt the ticket (restarted,
// rotated its ticket keys, another replica) just completes a full handshake. Anything wrong with the file (missing,
// unreadable, corrupt, of another server) is a miss. The file is replaced by an atomic rename, so concurrent plugin
// processes read a whole session or none.

// SessionFileName is the file, in the plugin's state directory, that holds the last TLS session with the API server.
const SessionFileName = "tls-session"

// sessionMagic starts the file: format and version.
var sessionMagic = []byte("asm-cni-tls-session/1\n")

// maxSessionFile bounds what is read: a session with its certificate chain is a few kB.
const maxSessionFile = 64 << 10

type sessionFile struct {
	path   string
	server string // the kubeconfig's server URL: a session is only offered to the server it was made with

	// mu guards what crypto/tls reports from the connection's goroutines (a ticket may arrive at any time).
	mu         sync.Mutex
	resumed    bool                    // the last handshake resumed the stored session
	version    uint16                  // the TLS version of the last handshake
	pending    *tls.ClientSessionState // the newest session the server issued, written by save
	pendingKey string                  // its crypto/tls cache key
	drop       bool                    // crypto/tls found the stored session unusable
}

func (s *sessionFile) key(cacheKey string) []byte { return []byte(s.server + "\n" + cacheKey) }

// Get returns the stored session for cacheKey, or a miss.
func (s *sessionFile) Get(cacheKey string) (*tls.ClientSessionState, bool) {
	cs, err := s.load(cacheKey)
	return cs, err == nil
}

func (s *sessionFile) load(cacheKey string) (*tls.ClientSessionState, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSessionFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSessionFile {
		return nil, errors.New("session file too large")
	}
	rest, ok := bytes.CutPrefix(data, sessionMagic)
	if !ok {
		return nil, errors.New("not a session file")
	}
	key, rest, ok := cut(rest)
	if !ok || !bytes.Equal(key, s.key(cacheKey)) {
		return nil, errors.New("session of another server")
	}
	ticket, rest, ok := cut(rest)
	if !ok {
		return nil, errors.New("truncated session file")
	}
	state, err := tls.ParseSessionState(rest)
	if err != nil {
		return nil, err
	}
	return tls.NewResumptionState(ticket, state)
}

// cut splits a 32-bit length-prefixed field off b.
func cut(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// Put keeps the session the server issued (written by save), or notes that the stored one is unusable (cs nil).
func (s *sessionFile) Put(cacheKey string, cs *tls.ClientSessionState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs == nil {
		s.drop = true
		return
	}
	s.pending, s.pendingKey = cs, cacheKey
}

// observe records whether a handshake resumed the stored session (tls.Config.VerifyConnection runs on every one).
func (s *sessionFile) observe(cs tls.ConnectionState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumed, s.version = cs.DidResume, cs.Version
	return nil
}

// didResume says whether the last handshake resumed the stored session.
func (s *sessionFile) didResume() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumed
}

// save writes the newest TLS 1.3 session after a full handshake; after a resumed one the stored ticket still serves,
// and the file is left alone (no write per pod). An unusable stored session is removed when nothing replaces it.
func (s *sessionFile) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resumed {
		return nil
	}
	// Only TLS 1.3 sessions are kept: their resumption runs a fresh key exchange (forward secrecy), where a TLS 1.2
	// resumption would reuse the old master secret.
	if s.version != tls.VersionTLS13 {
		s.pending = nil
	}
	if s.pending == nil {
		if s.drop {
			return ignoreMissing(os.Remove(s.path))
		}
		return nil
	}
	ticket, state, err := s.pending.ResumptionState()
	if err != nil || state == nil {
		return err
	}
	stateBytes, err := state.Bytes()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Write(sessionMagic)
	put := func(b []byte) {
		buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		buf.Write(b)
	}
	put(s.key(s.pendingKey))
	put(ticket)
	buf.Write(stateBytes)
	return atomicfile.Write(s.path, buf.Bytes(), 0o600)
}

func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
