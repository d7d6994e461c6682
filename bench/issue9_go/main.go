// issue9_go: the Go baseline of bench/issue9.c, GOMAXPROCS=1.  Runs one
// case and prints "wall_ns cpu_ns" of the work (CPU: the process's, all
// threads, the collector's included), or for burst the resident bytes
// "before peak after" (after: once debug.FreeOSMemory has returned what
// the collector freed).
//
//	issue9_go CASE COUNT
//
// Cases: batch100, batch1000, spawnall, detached, sleepers, yield100,
// burst (see bench/issue9.c).
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func cpuNs() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		panic(err)
	}
	return resident * int64(os.Getpagesize())
}

var sink int64

func batches(n, b int) {
	var wg sync.WaitGroup
	res := make([]int64, b)
	for i := 0; i < n; i += b {
		m := b
		if n-i < b {
			m = n - i
		}
		wg.Add(m)
		for k := 0; k < m; k++ {
			go func(k, v int) {
				res[k] = int64(v)
				wg.Done()
			}(k, i+k)
		}
		wg.Wait()
		for k := 0; k < m; k++ {
			sink += res[k]
		}
	}
}

func spawnAll(n int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
}

func sleepers(n int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			time.Sleep(time.Millisecond + time.Duration(i))
			wg.Done()
		}(i)
	}
	wg.Wait()
}

func yield100(n int) {
	var wg sync.WaitGroup
	each := n / 100
	wg.Add(100)
	for i := 0; i < 100; i++ {
		go func() {
			for k := 0; k < each; k++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
}

func burst(n int) {
	start := make(chan struct{})
	var up, down sync.WaitGroup
	before := rss()
	up.Add(n)
	down.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			var touch [512]byte
			touch[0] = 1
			up.Done()
			<-start
			atomic.AddInt64(&sink, int64(touch[0]))
			down.Done()
		}()
	}
	up.Wait()
	peak := rss()
	close(start)
	down.Wait()
	debug.FreeOSMemory() // a collection, and the freed memory back to the system
	after := rss()
	fmt.Printf("%d %d %d\n", before, peak, after)
}

func main() {
	runtime.GOMAXPROCS(1)
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: issue9_go CASE COUNT")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "issue9_go: bad COUNT")
		os.Exit(2)
	}
	if os.Args[1] == "burst" {
		burst(n)
		return
	}
	t0, c0 := time.Now(), cpuNs()
	switch os.Args[1] {
	case "batch100":
		batches(n, 100)
	case "batch1000":
		batches(n, 1000)
	case "spawnall", "detached":
		spawnAll(n)
	case "sleepers":
		sleepers(n)
	case "yield100":
		yield100(n)
	default:
		fmt.Fprintln(os.Stderr, "issue9_go: unknown case", os.Args[1])
		os.Exit(2)
	}
	fmt.Printf("%d %d\n", time.Since(t0).Nanoseconds(), cpuNs()-c0)
}
