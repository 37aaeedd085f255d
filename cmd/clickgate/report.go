package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// reportCmd prints the campaign report as a table (or CSV/JSON).
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: six days ago)")
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
	var rep struct {
		From, To, GroupBy string
		Rows              []struct {
			Group                  string              `json:"group"`
			HumanClicks            int64               `json:"human_clicks"`
			BotClicks              int64               `json:"bot_clicks"`
			UniqueVisitors         int64               `json:"unique_visitors"`
			ConversionsTotal       int64               `json:"conversions_total"`
			Reversed               map[string]int64    `json:"refunded_or_rejected"`
			Revenue                map[string]float64  `json:"revenue"`
			ConversionRate         *float64            `json:"conversion_rate"`
			RevenuePerMessage      map[string]float64  `json:"revenue_per_message"`
			CostPerConversion      *float64            `json:"cost_per_conversion"`
			MedianSecondsToConvert *int64              `json:"median_seconds_to_convert"`
			Discrepancy            *int64              `json:"discrepancy"`
			Change                 map[string]*float64 `json:"change"`
		} `json:"rows"`
	}
	if err := c.do("GET", "/api/v1/reports/campaigns?"+v.Encode(), nil, &rep); err != nil {
		return err
	}
	fmt.Printf("%s to %s, by %s\n\n", rep.From, rep.To, rep.GroupBy)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.ToUpper(rep.GroupBy)+"\tCLICKS\tBOTS\tVISITORS\tCONV\tREFUND\tCONV RATE\tREVENUE\tREV/MSG\tCOST/CONV\tMEDIAN TTC\tVS PLATFORM\tCONV Δ\t")
	for _, r := range rep.Rows {
		var refunds int64
		for _, n := range r.Reversed {
			refunds += n
		}
		ttc := "-"
		if r.MedianSecondsToConvert != nil {
			ttc = fmt.Sprintf("%dm", *r.MedianSecondsToConvert/60)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Group, r.HumanClicks, r.BotClicks, r.UniqueVisitors,
			r.ConversionsTotal, refunds, pct(r.ConversionRate), money(r.Revenue), money(r.RevenuePerMessage), optNum(r.CostPerConversion),
			ttc, optInt(r.Discrepancy), pct(r.Change["conversions_total"]))
	}
	return tw.Flush()
}

func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

func optNum(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}

func optInt(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+d", *v)
}

func money(m map[string]float64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for c, v := range m {
		parts = append(parts, fmt.Sprintf("%.2f %s", v, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, " + ")
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
