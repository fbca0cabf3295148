package dashboard

import (
	"embed"
	"io/fs"
)

// dist is the dashboard page and its bundle, built from web/src by `npm run build`
// in web/ (esbuild) and committed, so building stratus needs no Node.
//
//go:embed web/dist
var dist embed.FS

// Assets returns the dashboard's files: index.html, app.js, app.css.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "web/dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}
