package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// PathUI is where the operator console is served. Its static assets need no token: they
// hold no cluster data. The page calls the API under /v1/ with the tokens the operator
// types into it (kept in the browser's sessionStorage, sent as `Authorization: Bearer`).
const PathUI = "/ui"

// uiAssets is the console: plain HTML, CSS and JavaScript, no build step and no CDN, so
// it works on a cluster with no internet access.
//
//go:embed ui
var uiAssets embed.FS

// uiCSP confines the console to its own origin: scripts, styles and API calls come only
// from this admin server, nothing is framed, and no inline script runs.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// mountUI serves the console at PathUI (redirected to PathUI+"/") from the embedded
// assets.
func (s *Server) mountUI(mux *http.ServeMux) {
	sub, err := fs.Sub(uiAssets, "ui")
	if err != nil { // the embed directive guarantees the directory
		panic(err)
	}
	files := http.StripPrefix(PathUI+"/", http.FileServerFS(sub))
	mux.HandleFunc("GET "+PathUI, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, PathUI+"/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET "+PathUI+"/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Assets change only with the binary; revalidate so an upgrade shows at once.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
