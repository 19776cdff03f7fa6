package chain_test

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// unsafePort points at sockaddr_in6's port field (network byte order).
func unsafePort(a *unix.RawSockaddrInet6) unsafe.Pointer { return unsafe.Pointer(&a.Port) }
