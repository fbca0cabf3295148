package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
)

// NewToken returns a fresh random token: 32 bytes from crypto/rand, hex-encoded.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on Linux (Go 1.24+ panics rather than return an error)
	return hex.EncodeToString(b)
}

// tokenEqual compares in constant time (over hashes, so the length leaks nothing).
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1 && want != ""
}

// cookieName is per port: cookies ignore ports, and two servers on one host (a
// running apply and `stratus ui` of another pipeline) must not overwrite each other's.
func cookieName(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "stratus_token_" + port
}

// authenticate reports whether r carries the token, in an Authorization: Bearer
// header or in the cookie the dashboard page was given; viaCookie says which.
func (s *Server) authenticate(r *http.Request) (ok, viaCookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, found := strings.CutPrefix(h, "Bearer ")
		return found && tokenEqual(strings.TrimSpace(tok), s.token), false
	}
	if c, err := r.Cookie(s.cookie); err == nil {
		return tokenEqual(c.Value, s.token), true
	}
	return false, false
}

// isLoopbackHost reports whether host (no port) names this machine's loopback.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guard wraps every route: the Host check (against DNS rebinding) on a loopback
// server, the token check, the same-origin checks for POSTs authenticated by cookie,
// and headers that keep responses out of caches and frames. The token in a URL
// (?token=… on the page) is exchanged for an HttpOnly cookie and the browser is
// redirected to the same path without it.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		if !s.remote {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !isLoopbackHost(host) {
				httpError(w, http.StatusForbidden, "this server answers only on its loopback address")
				return
			}
		}
		if tok := r.URL.Query().Get("token"); tok != "" && r.Method == http.MethodGet {
			if !tokenEqual(tok, s.token) {
				s.unauthorized(w)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: s.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q := r.URL.Query()
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		ok, viaCookie := s.authenticate(r)
		if !ok {
			s.unauthorized(w)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && viaCookie {
			// A page on another port of this host is same-site, so SameSite cookies
			// reach us from it: require what a cross-origin form cannot send.
			if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
				httpError(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				httpError(w, http.StatusUnsupportedMediaType, "send JSON (Content-Type: application/json)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="stratus"`)
	httpError(w, http.StatusUnauthorized, "this server needs the apply's token: open the URL that `stratus apply -ui` or `stratus ui` printed, or send Authorization: Bearer TOKEN (see .stratus/control.json)")
}
