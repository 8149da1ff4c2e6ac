// A container registry on the loopback interface for the test suites: the
// OCI distribution API of go-containerregistry's registry package (the one
// its own tests and crane's use), with blobs in memory. It prints the address
// it listens on, then serves until killed. Only 127.0.0.1 is ever bound.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	address := flag.String("address", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	host, _, err := net.SplitHostPort(*address)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-address %q: only a loopback address is allowed", *address)
	}
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(listener.Addr().String())
	os.Stdout.Sync()
	server := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(os.Stderr, "registry: ", log.LstdFlags))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(server.Serve(listener))
}
