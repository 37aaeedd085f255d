package reports

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// columns are the conversion types and currencies any row of a report has, sorted, and
// the changes any row has, in the order of the figures: every row of a CSV or a table
// has the same columns.
type columns struct {
	types, reversed, currencies []string
	changes                     []string
}

func (r *Report) columns() columns {
	types, reversed, currencies := map[string]bool{}, map[string]bool{}, map[string]bool{}
	per := make([]map[string]bool, len(figures))
	for _, row := range r.Rows {
		maps.Copy(types, union(row.Conversions, nil))
		maps.Copy(reversed, union(row.Reversed, nil))
		for _, m := range []map[string]float64{row.Revenue, row.FirstClickRevenue, row.LinearRevenue, row.RevenuePerMessage} {
			maps.Copy(currencies, union(m, nil))
		}
		prev := row.Previous
		if prev == nil {
			prev = &Metrics{}
		}
		for i, f := range figures {
			if f.counts != nil {
				if per[i] == nil {
					per[i] = map[string]bool{}
				}
				maps.Copy(per[i], union(f.counts(&row.Metrics), f.counts(prev)))
			}
		}
	}
	c := columns{types: slices.Sorted(maps.Keys(types)), reversed: slices.Sorted(maps.Keys(reversed)), currencies: slices.Sorted(maps.Keys(currencies))}
	for i, f := range figures {
		if f.counts == nil {
			c.changes = append(c.changes, f.name)
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(per[i])) {
			c.changes = append(c.changes, keyed(f.name, k))
		}
	}
	return c
}

// WriteCSV writes the report as CSV: a header, then a row per group with every figure of
// the JSON form under its JSON name (per type or currency as NAME[KEY]: conversions[lead],
// revenue[USD]), the change of each against the previous period as change_NAME, and the
// two periods; the previous period's own figures (the JSON's "previous") are left to
// the JSON. An empty cell is an unknown figure, not zero.
func (r *Report) WriteCSV(w io.Writer) error {
	c := r.columns()
	head := []string{r.GroupBy, "human_clicks", "bot_clicks", "unique_visitors", "conversions_total"}
	head = appendPer(head, "conversions", c.types)
	head = appendPer(head, "refunded_or_rejected", c.reversed)
	for _, name := range []string{"revenue", "first_click_revenue", "linear_revenue"} {
		head = appendPer(head, name, c.currencies)
	}
	head = append(head, "conversion_rate", "conversion_rate_per_visitor", "median_seconds_to_convert", "p90_seconds_to_convert",
		"messages_sent", "cost", "cost_currency")
	head = appendPer(head, "revenue_per_message", c.currencies)
	head = append(head, "cost_per_conversion", "platform_conversions", "discrepancy", "discrepancy_ratio")
	for _, k := range c.changes {
		head = append(head, "change_"+k)
	}
	head = append(head, "from", "to", "previous_from", "previous_to")
	cw := csv.NewWriter(w)
	cw.Write(head)
	for _, row := range r.Rows {
		rec := []string{row.Group, itoa(row.HumanClicks), itoa(row.BotClicks), itoa(row.UniqueVisitors), itoa(row.ConversionsTotal)}
		for _, t := range c.types {
			rec = append(rec, itoa(row.Conversions[t]))
		}
		for _, t := range c.reversed {
			rec = append(rec, itoa(row.Reversed[t]))
		}
		for _, m := range []map[string]float64{row.Revenue, row.FirstClickRevenue, row.LinearRevenue} {
			for _, cur := range c.currencies {
				rec = append(rec, ftoa(m[cur]))
			}
		}
		rec = append(rec, optF(row.ConversionRate), optF(row.ConversionRatePerVisitor), optI(row.MedianSecondsToConvert), optI(row.P90SecondsToConvert),
			optI(row.MessagesSent), optF(row.Cost), row.CostCurrency)
		for _, cur := range c.currencies {
			cell := "" // no messages sent known
			if v, ok := row.RevenuePerMessage[cur]; ok {
				cell = ftoa(v)
			}
			rec = append(rec, cell)
		}
		rec = append(rec, optF(row.CostPerConversion), optI(row.PlatformConversions), optI(row.Discrepancy), optF(row.DiscrepancyRatio))
		for _, k := range c.changes {
			rec = append(rec, optF(row.Change[k]))
		}
		rec = append(rec, r.From, r.To, r.PreviousFrom, r.PreviousTo)
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

func appendPer(dst []string, name string, keys []string) []string {
	for _, k := range keys {
		dst = append(dst, keyed(name, k))
	}
	return dst
}

// WriteTable writes the report for a terminal: the figures of each group, then their
// change against the previous period. "-" is an unknown figure.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s to %s, by %s\n\n", r.From, r.To, r.GroupBy)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.ToUpper(r.GroupBy)+"\tCLICKS\tBOTS\tVISITORS\tCONV\tBY TYPE\tREFUNDED\tCONV RATE\tPER VISITOR\t"+
		"REVENUE\tFIRST CLICK\tLINEAR\tREV/MSG\tCOST\tCOST/CONV\tTTC MEDIAN\tTTC P90\tSENT\tPLATFORM\tVS PLATFORM\tRATIO\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			row.Group, row.HumanClicks, row.BotClicks, row.UniqueVisitors, row.ConversionsTotal, perType(row.Conversions), perType(row.Reversed),
			pct(row.ConversionRate), pct(row.ConversionRatePerVisitor), money(row.Revenue), money(row.FirstClickRevenue), money(row.LinearRevenue),
			exact(row.RevenuePerMessage), num(row.Cost, row.CostCurrency), num(row.CostPerConversion, row.CostCurrency),
			seconds(row.MedianSecondsToConvert), seconds(row.P90SecondsToConvert),
			count(row.MessagesSent), count(row.PlatformConversions), signed(row.Discrepancy), ratio(row.DiscrepancyRatio))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.PreviousFrom == "" {
		return nil
	}
	fmt.Fprintf(w, "\nchange against %s to %s\n\n", r.PreviousFrom, r.PreviousTo)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.ToUpper(r.GroupBy)+"\tCLICKS\tBOTS\tVISITORS\tCONV\tBY TYPE\tREFUNDED\tCONV RATE\tPER VISITOR\t"+
		"REVENUE\tFIRST CLICK\tLINEAR\tTTC MEDIAN\tTTC P90\t")
	for _, row := range r.Rows {
		ch := row.Change
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.Group,
			pctChange(ch["human_clicks"]), pctChange(ch["bot_clicks"]), pctChange(ch["unique_visitors"]), pctChange(ch["conversions_total"]),
			changesOf(row, "conversions"), changesOf(row, "refunded_or_rejected"),
			pctChange(ch["conversion_rate"]), pctChange(ch["conversion_rate_per_visitor"]),
			changesOf(row, "revenue"), changesOf(row, "first_click_revenue"), changesOf(row, "linear_revenue"),
			pctChange(ch["median_seconds_to_convert"]), pctChange(ch["p90_seconds_to_convert"]))
	}
	return tw.Flush()
}

// changesOf lists the changes of a per-type or per-currency figure ("USD +12.5%").
func changesOf(row Row, name string) string {
	f := figures[slices.IndexFunc(figures, func(f figure) bool { return f.name == name })]
	prev := row.Previous
	if prev == nil {
		prev = &Metrics{}
	}
	return list(union(f.counts(&row.Metrics), f.counts(prev)), ", ", func(k string, _ bool) string {
		return k + " " + pctChange(row.Change[keyed(f.name, k)])
	})
}

// list writes the entries of m in key order as each makes them, joined by sep, or "-"
// when there are none (each returns "" to leave one out).
func list[V any](m map[string]V, sep string, each func(k string, v V) string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if s := each(k, m[k]); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, sep)
}

func perType(m map[string]int64) string {
	return list(m, ", ", func(typ string, n int64) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%s %d", typ, n)
	})
}

func money(m map[string]float64) string {
	return list(m, " + ", func(c string, v float64) string { return fmt.Sprintf("%.2f %s", v, c) })
}

// exact writes amounts to the four decimals a report keeps: revenue per message is often
// below a cent.
func exact(m map[string]float64) string {
	return list(m, " + ", func(c string, v float64) string { return ftoa(v) + " " + c })
}

func ratio(v *float64) string {
	if v == nil {
		return "-"
	}
	return ftoa(*v)
}

func num(v *float64, currency string) string {
	if v == nil {
		return "-"
	}
	return strings.TrimSpace(fmt.Sprintf("%.2f %s", *v, currency))
}

func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

func pctChange(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", *v*100)
}

func count(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func signed(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+d", *v)
}

// seconds writes a time to conversion in the largest unit that keeps it readable.
func seconds(v *int64) string {
	if v == nil {
		return "-"
	}
	s := *v
	switch {
	case s < 120:
		return fmt.Sprintf("%ds", s)
	case s < 2*3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 2*86400:
		return fmt.Sprintf("%.1fh", float64(s)/3600)
	}
	return fmt.Sprintf("%.1fd", float64(s)/86400)
}

func itoa(n int64) string   { return strconv.FormatInt(n, 10) }
func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func optF(v *float64) string {
	if v == nil {
		return ""
	}
	return ftoa(*v)
}

func optI(v *int64) string {
	if v == nil {
		return ""
	}
	return itoa(*v)
}
