// Command baseline302 is the benchmark's fallback baseline when nginx is not installed:
// a bare fasthttp server that answers every request with 302 and one constant Location,
// the least work an HTTP redirect can cost in Go with the library clickgate uses.
//
//	baseline302 -listen 127.0.0.1:18190 -location 'https://shop.example.com/p?utm_source=sms'
package main

import (
	"flag"
	"log/slog"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18190", "address to serve on")
	location := flag.String("location", "https://shop.example.com/", "constant Location of every answer")
	flag.Parse()
	loc := []byte(*location)
	s := &fasthttp.Server{
		Name: "baseline302",
		Handler: func(ctx *fasthttp.RequestCtx) {
			// SetBytesV writes the bytes as given; ctx.Redirect would parse and re-escape
			// the URL, work that is not part of the baseline.
			ctx.SetStatusCode(fasthttp.StatusFound)
			ctx.Response.Header.SetBytesV("Location", loc)
		},
		NoDefaultContentType: true,
		NoDefaultDate:        false,
	}
	if err := s.ListenAndServe(*listen); err != nil {
		slog.Error("baseline302", "err", err)
		os.Exit(1)
	}
}
