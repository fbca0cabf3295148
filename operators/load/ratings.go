package load

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stratus-ml/stratus/dataset/manifest"
)

// ratingsNote is the closing note of a ratings load: per set, its ratings,
// users and items, and the rating range and mean.
func ratingsNote(ms map[string]*manifest.Manifest) string {
	var parts []string
	for _, ds := range manifest.Datasets {
		m := ms[ds]
		if m == nil || m.Rows == 0 || m.Ratings == nil {
			continue
		}
		r := m.Ratings
		f32 := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 32) } // ratings are float32s
		parts = append(parts, fmt.Sprintf("%s %d ratings of %d items by %d users (%s to %s, mean %.3f)", ds, r.Ratings, r.Items, r.Users, f32(r.Min), f32(r.Max), r.Mean))
	}
	return strings.Join(parts, "; ")
}
