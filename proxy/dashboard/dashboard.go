// Package dashboard serves the admin listener's /ui/: the campaign report in a browser.
// The page holds no figures and no secret. It asks for the admin token, keeps it for
// the browser tab only, and reads the report from the admin API with it, so the API's
// one token check guards every figure the page shows.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// policy lets the page load only its own script and style and talk only to its own
// origin: a campaign or link name shown in a report cannot run as script, and the page
// cannot be framed.
const policy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard's files under /ui/.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidated on each load, so a new binary's page is never mixed with an old
		// script.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
