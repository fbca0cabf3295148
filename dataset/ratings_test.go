package dataset_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
)

func TestRatingsSeparatorsAndIDs(t *testing.T) {
	p, err := dataset.NewRatings(10)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"196,242,3", "196\t242\t3\t881250949", "196::242::3::978300760", " 196 , 242 , 3.0 ,x", "196,242,3\r"} {
		var row dataset.Row
		ok, err := p.ParseLine([]byte(line), &row)
		if err != nil || !ok {
			t.Fatalf("%q: ok %v, err %v", line, ok, err)
		}
		u, i, good := dataset.RatingPair(row.Indices)
		if !good || u != 2*196 || i != 2*242+1 || row.Label != 3 || row.Values[0] != 3 {
			t.Fatalf("%q: row %+v (user slot %d, item slot %d)", line, row, u, i)
		}
	}
	// Ids past the bound and non-numeric ones are hashed below it, the same way each time.
	var a, b dataset.Row
	if _, err := p.ParseLine([]byte("alice,5000,4.5"), &a); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ParseLine([]byte("alice,5000,1"), &b); err != nil {
		t.Fatal(err)
	}
	ua, ia, _ := dataset.RatingPair(a.Indices)
	ub, ib, _ := dataset.RatingPair(b.Indices)
	if ua != ub || ia != ib || ua >= 2<<10 || ia >= 2<<10 || ua%2 != 0 || ia%2 != 1 {
		t.Fatalf("hashed slots %d,%d then %d,%d", ua, ia, ub, ib)
	}
	if a.Indices[0] >= a.Indices[1] {
		t.Fatalf("indices not increasing: %v", a.Indices)
	}
	// Headers, blanks and comments hold no row.
	for _, line := range []string{"userId,movieId,rating,timestamp", "user::item::Rating", "", "   ", "# c"} {
		var row dataset.Row
		if ok, err := p.ParseLine([]byte(line), &row); ok || err != nil {
			t.Fatalf("%q: ok %v, err %v", line, ok, err)
		}
	}
}

func TestRatingsBadLines(t *testing.T) {
	p, _ := dataset.NewRatings(0)
	for _, c := range []struct {
		line, reason string
		col          int
	}{
		{"1,2", dataset.ReasonColumns, 1},
		{"1,2,x", dataset.ReasonLabel, 5},
		{"1,2,NaN", dataset.ReasonNonFinite, 5},
		{"1, ,3", dataset.ReasonValue, 3},
		{",2,3", dataset.ReasonValue, 1},
		{"1::2::1e40", dataset.ReasonNonFinite, 7},
	} {
		var row dataset.Row
		_, err := p.ParseLine([]byte(c.line), &row)
		var pe *dataset.ParseError
		if !errors.As(err, &pe) || pe.Reason != c.reason || pe.Column != c.col {
			t.Errorf("%q: got %v (%+v), want %s at column %d", c.line, err, pe, c.reason, c.col)
		}
	}
	// Through a Scanner, the error names the object and the line.
	sc := dataset.NewScanner(strings.NewReader("u,i,r\n1,2,3\n1,2,three\n"), p, dataset.ScanOptions{Object: "ratings.csv"})
	var row dataset.Row
	var err error
	for err == nil {
		err = sc.Next(&row)
	}
	if !strings.Contains(err.Error(), "ratings.csv:3:5") {
		t.Fatalf("error %q does not name ratings.csv:3:5", err)
	}
}

func TestRatingsPairs(t *testing.T) {
	p, _ := dataset.NewRatings(0)
	p.Pairs = true
	var row dataset.Row
	if ok, err := p.ParseLine([]byte("7,9"), &row); !ok || err != nil || !math.IsNaN(float64(row.Label)) {
		t.Fatalf("pair: ok %v err %v row %+v", ok, err, row)
	}
	if ok, err := p.ParseLine([]byte("7,9,4"), &row); !ok || err != nil || row.Label != 4 {
		t.Fatalf("pair with rating: ok %v err %v row %+v", ok, err, row)
	}
	if _, err := dataset.NewRatings(31); err == nil {
		t.Fatal("hash_bits 31 accepted")
	}
}

func FuzzRatings(f *testing.F) {
	for _, s := range []string{
		"196,242,3,881250949", "1::1193::5::978300760", "196\t242\t3", "userId,movieId,rating,timestamp",
		"alice,bob,4.5", "1,2", "1,2,x", "1,2,NaN", ",2,3", "1::2", "1:2:3", "1,2,3,4,5", "\xff,\xfe,1", "::::", "1\t\t2",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("1,2"), true)
	f.Fuzz(func(t *testing.T, line []byte, pairs bool) {
		p, err := dataset.NewRatings(8)
		if err != nil {
			t.Fatal(err)
		}
		p.Pairs = pairs
		var row dataset.Row
		ok, err := p.ParseLine(line, &row)
		if err != nil {
			checkErr(t, err)
			return
		}
		if !ok {
			return
		}
		u, i, good := dataset.RatingPair(row.Indices)
		if !good || u >= 2<<8 || i >= 2<<8 || len(row.Values) != 2 || row.Indices[0] >= row.Indices[1] {
			t.Fatalf("row %+v", row)
		}
		if !pairs && (math.IsNaN(float64(row.Label)) || math.IsInf(float64(row.Label), 0)) {
			t.Fatalf("rating %v", row.Label)
		}
	})
}
