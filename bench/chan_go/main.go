// chan_go: the Go baseline of bench/chan.c.  Two goroutines play
// ping-pong over two unbuffered channels with GOMAXPROCS=1; prints the
// nanoseconds per round trip (2 sends + 2 receives) of one timed run.
//
//	chan_go [round_trips]   default 1000000
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

var sink int64

func main() {
	runtime.GOMAXPROCS(1)
	n := int64(1000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			fmt.Fprintln(os.Stderr, "usage: chan_go [round_trips >= 1]")
			os.Exit(2)
		}
		n = v
	}
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
