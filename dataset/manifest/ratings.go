package manifest

import "math"

// RatingsSummary is what a ratings dataset (format "ratings", see
// dataset.Ratings) holds: how many distinct users and items it rates (the
// distinct ids: tokens that share a hashed id count once), how many ratings,
// and their mean, minimum and maximum.
type RatingsSummary struct {
	Users   int64   `json:"users"`
	Items   int64   `json:"items"`
	Ratings int64   `json:"ratings"`
	Mean    float64 `json:"mean"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
}

// SummarizeRatings reads a ratings dataset's summary off its per-slot
// statistics: a user's even slot and an item's odd slot each hold the row's
// rating, so the even slots' counts and sums are the ratings'.
func SummarizeRatings(st *Stats) *RatingsSummary {
	s := &RatingsSummary{Min: math.Inf(1), Max: math.Inf(-1)}
	var sum float64
	st.Each(func(i uint32, f Feature) {
		if f.Count == 0 {
			return
		}
		if i%2 == 1 {
			s.Items++
			return
		}
		s.Users++
		s.Ratings += f.Count
		sum += f.Sum
		s.Min, s.Max = math.Min(s.Min, float64(f.Min)), math.Max(s.Max, float64(f.Max))
	})
	if s.Ratings == 0 {
		s.Min, s.Max = 0, 0
		return s
	}
	s.Mean = sum / float64(s.Ratings)
	return s
}
