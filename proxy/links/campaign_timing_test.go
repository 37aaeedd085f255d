package links

import "testing"

// BenchmarkCampaignName: reports work out every cell's campaign name (once a name per
// report); a name already in its form costs a scan and no allocation.
func BenchmarkCampaignName(b *testing.B) {
	for _, s := range []string{"spring_sale_2026", "Spring Sale 2026", "春のセール"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				CampaignName(s)
			}
		})
	}
}
