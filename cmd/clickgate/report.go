package main

import (
	"encoding/json"
	"errors"
	"flag"
	"net/url"
	"os"

	"github.com/clickgate/clickgate/proxy/reports"
)

// reportCmd prints the campaign report as a table (or CSV/JSON).
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: six days before the last)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (default: today)")
	by := fs.String("group-by", "campaign", "campaign, medium, content, link, day or week")
	format := fs.String("format", "table", "table, csv or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	v := url.Values{"group_by": {*by}}
	if *from != "" {
		v.Set("from", *from)
	}
	if *to != "" {
		v.Set("to", *to)
	}
	if *format == "csv" || *format == "json" {
		v.Set("format", *format)
		var raw json.RawMessage
		if err := c.do("GET", "/api/v1/reports/campaigns?"+v.Encode(), nil, &raw); err != nil {
			return err
		}
		if *format == "json" {
			printJSON(raw)
		} else {
			os.Stdout.Write(raw)
		}
		return nil
	}
	var rep reports.Report
	if err := c.do("GET", "/api/v1/reports/campaigns?"+v.Encode(), nil, &rep); err != nil {
		return err
	}
	return rep.WriteTable(os.Stdout)
}

// campaignsCmd: campaigns get ID | campaigns set ID '{"messages_sent": 1000, ...}'
func campaignsCmd(args []string) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	switch {
	case len(args) == 2 && args[0] == "get":
		err = c.do("GET", "/api/v1/campaigns/"+url.PathEscape(args[1]), nil, &raw)
	case len(args) == 3 && args[0] == "set":
		err = c.do("PUT", "/api/v1/campaigns/"+url.PathEscape(args[1]), json.RawMessage(args[2]), &raw)
	default:
		return errors.New(`campaigns get ID | campaigns set ID '{"messages_sent": 1000, "cost": 50, "currency": "USD", "platform_conversions": 12}'`)
	}
	if err != nil {
		return err
	}
	printJSON(raw)
	return nil
}
