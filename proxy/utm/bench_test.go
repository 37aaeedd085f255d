package utm

import "testing"

func BenchmarkAppendQuery(b *testing.B) {
	v := Values{"sms", "promotional", "spring_sale_2026", "variant_a", "red_shoes"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = v.AppendQuery(buf[:0])
	}
}

func BenchmarkNormalize(b *testing.B) {
	p := DefaultPolicy()
	for _, bc := range []struct {
		name string
		v    Values
	}{
		{"canonical", Values{"sms", "promotional", "spring_sale_2026", "variant_a", "red_shoes"}},
		{"ascii", Values{"SMS", "Promo", "Spring Sale 2026!", "Variant A", "Red Shoes"}},
		{"accents", Values{"", "welcome-flow", "Été Soldes Crème Brûlée", "Variante Á", "Straße"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := p.Normalize(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
