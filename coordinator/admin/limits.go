package admin

import (
	"net"
	"sync"
	"sync/atomic"
)

// Defaults of the admin listener's limits (`coordinator serve` --admin-max-body-bytes
// and --admin-max-conns-per-client).
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxConnsPerClient = 32
)

// ConnLimitListener caps the open connections from each client IP. A connection over
// the cap is closed as soon as it is accepted, before any byte is read (under TLS no
// HTTP answer could be sent before the handshake anyway), and counted.
type ConnLimitListener struct {
	net.Listener
	max     int
	mu      sync.Mutex
	open    map[string]int
	refused atomic.Uint64
}

// LimitConnsPerClient wraps ln so that each remote IP has at most max connections
// open (max <= 0: no limit, ln is wrapped only to count).
func LimitConnsPerClient(ln net.Listener, max int) *ConnLimitListener {
	return &ConnLimitListener{Listener: ln, max: max, open: map[string]int{}}
}

// Accept returns the next connection within its client's cap.
func (l *ConnLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.max > 0 && l.open[ip] >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

// Refused is how many connections were closed for being over their client's cap.
func (l *ConnLimitListener) Refused() uint64 { return l.refused.Load() }

// Open is how many connections ip has open.
func (l *ConnLimitListener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip]
}

func (l *ConnLimitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

func remoteIP(c net.Conn) string {
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	l    *ConnLimitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
