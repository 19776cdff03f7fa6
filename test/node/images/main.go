// Test-only stand-in for the container images the node tier's pods reference (no image registry is reachable).
// NOT Istio: it does none of Envoy's or pilot-agent's work. One static binary, the role comes from the arguments:
//
//	standin pause                     the sandbox (pause) image: sleeps until SIGTERM/SIGINT
//	standin app [PORT]                an application: answers "app PORT" on PORT (default 9080) until stopped
//	standin dial HOST:PORT            connects, prints the peer's one-line answer, exits 0 (1 on failure)
//	standin istio proxy ...           Istio's `istio-proxy` container: on 15001 (outbound) and 15006 (inbound) answers
//	                                  every connection with "proxy PORT original-dst IP:PORT" (SO_ORIGINAL_DST), and
//	                                  serves GET /healthz/ready on 15021
//	standin istio istio-iptables ... --run-validation ...
//	                                  Istio's `istio-validation` init container: checks that a connection from the
//	                                  proxy's UID to 127.0.0.6:15002 is redirected to 15006; exits 126 when it is not
//	                                  (as Istio's does), 0 when it is
//	standin istio istio-iptables ...  without --run-validation (Istio's `istio-init`): prints that it programs nothing
//	                                  and exits 0, so a pod that keeps istio-init starts without any redirection
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	outboundPort   = 15001
	inboundPort    = 15006
	readyPort      = 15021
	validationIP   = "127.0.0.6"
	validationPort = 15002
	// Istio's istio-validation exit code when the redirection is missing.
	validationFailed = 126
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: standin pause|app|dial|istio ...")
	}
	switch os.Args[1] {
	case "pause":
		waitForSignal()
	case "app":
		port := 9080
		if len(os.Args) > 2 {
			port = atoi(os.Args[2])
		}
		serveLines(port, func(net.Conn) string { return fmt.Sprintf("app %d", port) })
		waitForSignal()
	case "dial":
		if len(os.Args) != 3 {
			fail("usage: standin dial HOST:PORT")
		}
		line, err := dialLine(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(line)
	case "istio":
		istio(os.Args[2:])
	default:
		fail("unknown role " + os.Args[1])
	}
}

func istio(args []string) {
	if len(args) == 0 {
		fail("standin istio: no command (proxy or istio-iptables)")
	}
	switch args[0] {
	case "proxy":
		for _, p := range []int{outboundPort, inboundPort} {
			port := p
			serveLines(port, func(c net.Conn) string {
				dst, err := originalDst(c)
				if err != nil {
					return fmt.Sprintf("proxy %d original-dst error %v", port, err)
				}
				return fmt.Sprintf("proxy %d original-dst %s", port, dst)
			})
		}
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
			if err := http.ListenAndServe(fmt.Sprintf(":%d", readyPort), mux); err != nil {
				fail(err.Error())
			}
		}()
		fmt.Println("standin istio-proxy (test-only, not Istio): listening on 15001, 15006, 15021")
		waitForSignal()
	case "istio-iptables":
		for _, a := range args[1:] {
			if a == "--run-validation" {
				os.Exit(validate())
			}
		}
		fmt.Println("standin istio-init (test-only, not Istio): programs nothing")
	default:
		fail("standin istio: unknown command " + args[0])
	}
}

// validate listens on the inbound port and connects to 127.0.0.6:15002: only Istio's redirection (loopback traffic of
// the proxy's UID goes to ISTIO_IN_REDIRECT) makes that connection land on the listener.
func validate() int {
	want := fmt.Sprintf("%s:%d", validationIP, validationPort)
	serveLines(inboundPort, func(c net.Conn) string {
		dst, err := originalDst(c)
		if err != nil {
			return "error " + err.Error()
		}
		return dst
	})
	// The listener is up before the dial: one attempt decides (refused or answered by someone else = not redirected).
	got, err := dialLine(want)
	if err == nil && got == want {
		fmt.Printf("standin istio-validation (test-only): %s was redirected to %d\n", want, inboundPort)
		return 0
	}
	if err == nil {
		err = fmt.Errorf("answered %q", got)
	}
	fmt.Fprintf(os.Stderr, "standin istio-validation (test-only): traffic is not redirected: %v\n", err)
	return validationFailed
}

// serveLines accepts on 0.0.0.0:port in the background and answers each connection with one line.
func serveLines(port int, answer func(net.Conn) string) {
	l, err := net.Listen("tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		fail(err.Error())
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, answer(c))
			c.Close()
		}
	}()
}

func dialLine(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading the answer of %s: %w", addr, err)
	}
	return strings.TrimSpace(line), nil
}

// originalDst reads SO_ORIGINAL_DST (the address before iptables' REDIRECT) of an accepted IPv4 connection.
func originalDst(c net.Conn) (string, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return "", fmt.Errorf("not TCP")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return "", err
	}
	const soOriginalDst = 80
	var sa [16]byte // struct sockaddr_in
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		size := uint32(len(sa))
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IP, soOriginalDst,
			uintptr(unsafe.Pointer(&sa[0])), uintptr(unsafe.Pointer(&size)), 0)
	}); err != nil {
		return "", err
	}
	if errno != 0 {
		return "", errno
	}
	port := int(sa[2])<<8 | int(sa[3])
	return fmt.Sprintf("%d.%d.%d.%d:%d", sa[4], sa[5], sa[6], sa[7], port), nil
}

func waitForSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("not a port: " + s)
	}
	return n
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "standin:", msg)
	os.Exit(1)
}
