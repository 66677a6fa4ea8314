// Command gobroker is the Go peer of the benchmark: go-micro's HTTP broker
// wire protocol written with the standard library only (net/http and
// crypto/tls), as a stand-in for go-micro v5's HTTP broker.
//
//	gobroker sub CERT KEY COUNT TIMEOUT_S
//	gobroker pub CA URL COUNT SIZE INFLIGHT TIMEOUT_S
//
// The subscriber serves HTTPS on 127.0.0.1 (any free port), prints
// "READY pid=P url=U", decodes each JSON POST as go-micro does
// ({"Header": {...}, "Body": <base64>}), and prints the same RESULT line as
// the C subscribers. The publisher keeps INFLIGHT requests in flight over
// keep-alive connections, with verification on against CA.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// message is go-micro's broker.Message; Body travels as base64.
type message struct {
	Header map[string]string
	Body   []byte
}

type record struct {
	mu          sync.Mutex
	expected    int
	warmup      int
	received    int
	latencies   []int64
	windowStart int64
	lastRecv    int64
	done        chan struct{}
}

func newRecord(expected int) *record {
	warmup := expected / 10
	if warmup > 200 {
		warmup = 200
	}
	return &record{expected: expected, warmup: warmup, done: make(chan struct{}),
		latencies: make([]int64, 0, expected)}
}

func (r *record) add(body []byte) {
	now := time.Now().UnixNano()
	if len(body) < 8 {
		return
	}
	sent := int64(binary.LittleEndian.Uint64(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.received >= r.expected {
		return
	}
	if r.received == r.warmup {
		r.windowStart = sent
	}
	if r.received >= r.warmup {
		r.latencies = append(r.latencies, now-sent)
	}
	r.received++
	r.lastRecv = now
	if r.received == r.expected {
		close(r.done)
	}
}

func (r *record) print() {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.latencies)
	var rate, p50, p99 float64
	if n > 0 {
		sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
		p50 = float64(r.latencies[(n-1)*50/100]) / 1e3
		p99 = float64(r.latencies[(n-1)*99/100]) / 1e3
		if secs := float64(r.lastRecv-r.windowStart) / 1e9; secs > 0 {
			rate = float64(n) / secs
		}
	}
	fmt.Printf("RESULT received=%d rate=%.1f p50_us=%.1f p99_us=%.1f\n", r.received, rate, p50, p99)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "gobroker: "+format+"\n", args...)
	os.Exit(2)
}

func number(s, name string) int {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		fail("%s %q is not a positive number", name, s)
	}
	return v
}

func loadPool(caFile string) *x509.CertPool {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fail("reading CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fail("no certificate in CA file %s", caFile)
	}
	return pool
}

// handle does what go-micro's HTTP broker ServeHTTP does for one message.
func handle(rec *record, maxBody int64) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
			return
		}
		data, err := io.ReadAll(io.LimitReader(req.Body, maxBody))
		if err != nil {
			http.Error(w, "Error reading request body", http.StatusInternalServerError)
			return
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			http.Error(w, "Error parsing request body", http.StatusInternalServerError)
			return
		}
		if m.Header["Micro-Topic"] == "" {
			http.Error(w, "Topic not found", http.StatusInternalServerError)
			return
		}
		_ = req.URL.Query().Get("id")
		rec.add(m.Body)
	}
}

func runSub(args []string) {
	if len(args) != 4 {
		fail("usage: gobroker sub CERT KEY COUNT TIMEOUT_S")
	}
	cert, err := tls.LoadX509KeyPair(args[0], args[1])
	if err != nil {
		fail("loading certificate: %v", err)
	}
	count := number(args[2], "COUNT")
	timeout := time.Duration(number(args[3], "TIMEOUT_S")) * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	rec := newRecord(count)
	srv := &http.Server{Handler: handle(rec, 4<<20), TLSConfig: cfg,
		ReadTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	fmt.Printf("READY pid=%d url=https://%s/?id=bench-go\n", os.Getpid(), ln.Addr())
	select {
	case <-rec.done:
	case <-time.After(timeout):
	}
	rec.print()
	if rec.received < count {
		os.Exit(1)
	}
}

func runPub(args []string) {
	if len(args) != 6 {
		fail("usage: gobroker pub CA URL COUNT SIZE INFLIGHT TIMEOUT_S")
	}
	url := args[1]
	count := number(args[2], "COUNT")
	size := number(args[3], "SIZE")
	inflight := number(args[4], "INFLIGHT")
	timeout := time.Duration(number(args[5], "TIMEOUT_S")) * time.Second
	if size < 8 {
		size = 8
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: loadPool(args[0]), MinVersion: tls.VersionTLS13},
		MaxIdleConns:        inflight,
		MaxIdleConnsPerHost: inflight,
	}}

	var next, ok, failed int64
	deadline := time.Now().Add(timeout)
	var wg sync.WaitGroup
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{'x'}, size)
			for atomic.AddInt64(&next, 1) <= int64(count) && time.Now().Before(deadline) {
				if publish(client, url, body) {
					atomic.AddInt64(&ok, 1)
				} else {
					atomic.AddInt64(&failed, 1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "PUB ok=%d failed=%d\n", ok, failed)
	if ok < int64(count) {
		os.Exit(1)
	}
}

// publish encodes and POSTs one message as go-micro's HTTP broker Publish does.
func publish(client *http.Client, url string, body []byte) bool {
	binary.LittleEndian.PutUint64(body, uint64(time.Now().UnixNano()))
	data, err := json.Marshal(&message{Header: map[string]string{"Micro-Topic": "bench"},
		Body: body})
	if err != nil {
		return false
	}
	rsp, err := client.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	return rsp.StatusCode/100 == 2
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: gobroker sub|pub ARGS")
	}
	switch os.Args[1] {
	case "sub":
		runSub(os.Args[2:])
	case "pub":
		runPub(os.Args[2:])
	default:
		fail("unknown command %q: use sub or pub", os.Args[1])
	}
}
