// The Go baselines of the HTTP benchmark (bench/run-http.sh), run with
// GOMAXPROCS=1: the same "hello" server as bench_http, either with
// net/http or on raw net.Conn (a goroutine per connection, the parsing of
// bench/http.h: one Read, the answers to its whole requests, one Write).
//
//	http_go -mode=http|raw PORT
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
)

const reqMax = 8192

var (
	ans200 = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" +
		"Content-Length: 14\r\n\r\nHello, world!\n")
	ans404 = []byte("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n" +
		"Content-Length: 10\r\n\r\nNot Found\n")
	ans400 = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n" +
		"Content-Length: 12\r\nConnection: close\r\n\r\nBad Request\n")
	crlf2 = []byte("\r\n\r\n")
	crlf  = []byte("\r\n")
)

// parse is http_parse of bench/http.h: the bytes the request at buf takes
// (0: not whole yet), its answer and whether to close after it.
func parse(buf []byte) (int, []byte, bool) {
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		if len(buf) >= reqMax {
			return len(buf), ans400, true
		}
		return 0, nil, false
	}
	size := end + 4
	p := 0
	for p < end && buf[p] >= 'A' && buf[p] <= 'Z' {
		p++
	}
	if p == 0 || buf[p] != ' ' {
		return size, ans400, true
	}
	p++
	t := p
	for p < end && buf[p] > ' ' {
		p++
	}
	if p == t || end-p < 9 || !bytes.Equal(buf[p:p+8], []byte(" HTTP/1.")) ||
		(buf[p+8] != '1' && buf[p+8] != '0') {
		return size, ans400, true
	}
	keep := buf[p+8] == '1'
	get := t == 4 && bytes.Equal(buf[:3], []byte("GET"))
	root := p-t == 1 && buf[t] == '/'
	p += 9
	clen := 0
	for p < end {
		line := p + 2
		eol := line + bytes.Index(buf[line:end+2], crlf)
		colon := bytes.IndexByte(buf[line:eol], ':')
		if colon <= 0 {
			return size, ans400, true
		}
		name := buf[line : line+colon]
		v := line + colon + 1
		for v < eol && (buf[v] == ' ' || buf[v] == '\t') {
			v++
		}
		val := buf[v:eol]
		if len(name) == 10 && bytes.EqualFold(name, []byte("connection")) {
			if len(val) >= 5 && bytes.EqualFold(val[:5], []byte("close")) {
				keep = false
			} else if len(val) >= 10 && bytes.EqualFold(val[:10], []byte("keep-alive")) {
				keep = true
			}
		} else if len(name) == 14 && bytes.EqualFold(name, []byte("content-length")) {
			d := 0
			for d < len(val) && val[d] >= '0' && val[d] <= '9' {
				d++
			}
			n, err := strconv.Atoi(string(val[:d]))
			if d == 0 || err != nil || n > reqMax {
				return size, ans400, true
			}
			clen = n
		}
		p = eol
	}
	if len(buf)-size < clen {
		if size+clen > reqMax {
			return len(buf), ans400, true
		}
		return 0, nil, false
	}
	if get && root {
		return size + clen, ans200, !keep
	}
	return size + clen, ans404, !keep
}

func serveRaw(c net.Conn) {
	defer c.Close()
	in := make([]byte, reqMax)
	out := make([]byte, 0, 4096+len(ans400))
	n := 0
	for {
		r, err := c.Read(in[n:])
		if r <= 0 || err != nil {
			return
		}
		n += r
		at, done := 0, false
		for !done {
			took, ans, cl := parse(in[at:n])
			if took == 0 {
				break
			}
			if len(out)+len(ans) > cap(out) {
				if _, err := c.Write(out); err != nil {
					return
				}
				out = out[:0]
			}
			out = append(out, ans...)
			at += took
			done = cl
		}
		copy(in, in[at:n])
		n -= at
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		if done {
			return
		}
	}
}

func main() {
	mode := flag.String("mode", "http", "http (net/http) or raw (net.Conn)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: http_go -mode=http|raw PORT")
		os.Exit(2)
	}
	addr := "127.0.0.1:" + flag.Arg(0)
	switch *mode {
	case "http":
		hello := []byte("Hello, world!\n")
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Write(hello)
		})
		fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, nil))
	case "raw":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for {
			c, err := l.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			go serveRaw(c)
		}
	default:
		fmt.Fprintln(os.Stderr, "mode: http or raw")
		os.Exit(2)
	}
	os.Exit(1)
}
