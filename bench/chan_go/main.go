// chan_go: the Go baseline of bench/chan.c and bench/mt.c.  Two goroutines
// play ping-pong over two unbuffered channels; prints the nanoseconds per
// round trip (2 sends + 2 receives) of one timed run.  With GOMAXPROCS=1
// (the default, bench_chan's row) both goroutines share one thread; with
// 2 (bench_mt's row) the runtime may put them on two, as bench_mt's
// coroutines on two pool threads are.
//
//	chan_go [round_trips [gomaxprocs]]   defaults 1000000, 1
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

var sink int64

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chan_go [round_trips >= 1 [gomaxprocs >= 1]]")
	os.Exit(2)
}

func main() {
	n := int64(1000000)
	procs := 1
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			usage()
		}
		n = v
	}
	if len(os.Args) > 2 {
		v, err := strconv.Atoi(os.Args[2])
		if err != nil || v < 1 {
			usage()
		}
		procs = v
	}
	runtime.GOMAXPROCS(procs)
	ping := make(chan int64)
	pong := make(chan int64)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	// one trip first, so that both goroutines are parked in their loops
	ping <- 0
	<-pong
	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	el := time.Since(t0)
	close(ping)
	sink = sum
	fmt.Printf("%.1f\n", float64(el.Nanoseconds())/float64(n))
}
