// Command clickgate is the edge redirect proxy for SMS links. `clickgate serve` runs it;
// the other subcommands are conveniences over the admin API.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `clickgate — edge redirect proxy for SMS marketing links

Usage:
  clickgate serve                     run the proxy (configured by CLICKGATE_* variables)
  clickgate links create [flags]      create a link (see clickgate links create -h)
  clickgate links bulk FILE.json      create links from {"links": [...]}
  clickgate links get SLUG            show a link and its click counts
  clickgate links list [flags]        list links
  clickgate links update SLUG JSON    change a link (JSON like the create body)
  clickgate links archive SLUG        retire a link (answers 410 from then on)
  clickgate links tokens SLUG FILE    per-recipient tokens for a send list (CSV with a phone, email or customer_id
                                      column, any case; or one column: +/punctuated numbers are phones, bare digits customer IDs)
  clickgate links check SLUG          preflight: follow the link without counting a click
  clickgate clicks get CLICK_ID       show one click
  clickgate report [-from D] [-to D] [-group-by campaign|medium|content|link|day|week] [-format table|csv|json]
                                      clicks, visitors, conversions, revenue, rates, time to conversion
  clickgate campaigns get|set ID [JSON] messages sent, cost, platform-reported conversions
  clickgate plugins                   plugin states (running, failed, restarting), lag, last error
  clickgate deadletters list|show|replay|purge PLUGIN|kafka [SEQ...]
                                      events a forwarder, or Kafka, would not take
  clickgate tail [-topic T] [-from-beginning] [-n N] [-keys]
                                      print events from a Kafka topic (CLICKGATE_KAFKA_BROKERS)
  clickgate healthcheck               exit 0 if the local edge answers /healthz (for containers)
  clickgate version                   print the version

The admin commands talk to CLICKGATE_ADMIN_URL (default http://CLICKGATE_ADMIN_LISTEN)
with CLICKGATE_ADMIN_TOKEN (default: the token in CLICKGATE_DATA_DIR/admin.token).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve()
	case "links":
		err = linksCmd(os.Args[2:])
	case "clicks":
		err = clicksCmd(os.Args[2:])
	case "plugins":
		err = pluginsCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "campaigns":
		err = campaignsCmd(os.Args[2:])
	case "deadletters":
		err = deadlettersCmd(os.Args[2:])
	case "tail":
		err = tail(os.Args[2:])
	case "healthcheck":
		err = healthcheck()
	case "version", "--version", "-v":
		fmt.Println("clickgate", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "clickgate: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clickgate:", err)
		os.Exit(1)
	}
}

// healthcheck asks the local public listener for /healthz; images without curl use it.
func healthcheck() error {
	addr := os.Getenv("CLICKGATE_LISTEN")
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("CLICKGATE_LISTEN: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %d", resp.StatusCode)
	}
	return nil
}
