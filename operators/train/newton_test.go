package train_test

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators/train"
)

// sparseSet is a LIBSVM file read in the test: rows of (1-based index, value)
// pairs and 0/1 labels.
type sparseSet struct {
	idx [][]int
	val [][]float64
	y   []float64
}

func readSparse(t *testing.T, path string) *sparseSet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &sparseSet{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		y, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("%s: label %q: %v", path, fields[0], err)
		}
		var idx []int
		var val []float64
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, ":")
			i, err1 := strconv.Atoi(k)
			x, err2 := strconv.ParseFloat(v, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: feature %q", path, kv)
			}
			idx, val = append(idx, i), append(val, x)
		}
		s.idx, s.val, s.y = append(s.idx, idx), append(s.val, val), append(s.y, math.Max(y, 0))
	}
	return s
}

// margin is w·x + b for row r, w indexed from feature 1 at w[0], b = w[len-1].
func (s *sparseSet) margin(w []float64, r int) float64 {
	z := w[len(w)-1]
	for k, i := range s.idx[r] {
		if i-1 < len(w)-1 {
			z += w[i-1] * s.val[r][k]
		}
	}
	return z
}

// logloss is the mean log loss of w on s.
func (s *sparseSet) logloss(w []float64) float64 {
	var l float64
	for r := range s.y {
		z := s.margin(w, r)
		l += math.Log1p(math.Exp(-math.Abs(z))) + math.Max(z, 0) - s.y[r]*z
	}
	return l / float64(len(s.y))
}

// objective is the full-batch solvers' objective: the mean log loss plus
// λ/2·‖w‖² over the features, the intercept unregularised.
func (s *sparseSet) objective(w []float64, lambda float64) float64 {
	f := s.logloss(w)
	for _, x := range w[:len(w)-1] {
		f += lambda / 2 * x * x
	}
	return f
}

// liblinearBias is the bias feature's value liblinear is run with: its weight
// is the intercept over liblinearBias, so regularising the weight costs the
// intercept 1/liblinearBias² of the features' penalty, next to nothing: the
// objective is then the full-batch solvers', whose intercept is not regularised.
const liblinearBias = 100

// liblinear trains liblinear-train -s 0 -c 1 -B liblinearBias on path and
// returns its weights in the layout of sparseSet (features, then the intercept).
func liblinear(t *testing.T, path string, features int) []float64 {
	t.Helper()
	if _, err := exec.LookPath("liblinear-train"); err != nil {
		t.Skip("liblinear-train is not installed (Debian: apt-get install liblinear-tools): the reference is computed with it")
	}
	model := filepath.Join(t.TempDir(), "model")
	if out, err := exec.Command("liblinear-train", "-q", "-s", "0", "-c", "1", "-B", strconv.Itoa(liblinearBias), path, model).CombinedOutput(); err != nil {
		t.Fatalf("liblinear-train: %v\n%s", err, out)
	}
	b, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(b), "\nw\n")
	if !ok {
		t.Fatalf("liblinear model without weights:\n%s", b)
	}
	sign := 1.0
	for _, line := range strings.Split(head, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "label" && f[1] != "1" {
			sign = -1 // liblinear's weights score its first label
		}
	}
	var w []float64
	for _, f := range strings.Fields(body) {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("liblinear weight %q: %v", f, err)
		}
		w = append(w, sign*x)
	}
	if len(w) != features+1 {
		t.Fatalf("liblinear wrote %d weights, want %d features and the bias", len(w), features)
	}
	w[features] *= liblinearBias
	return w
}

// TestNewtonAgreesWithLiblinear trains heart_scale and a9a with the defaults —
// solver = "auto" picks trust-region Newton for these small models — every
// training row in the objective (the validation set is the training file), and
// compares with liblinear -s 0 -c 1 run in the test (its bias feature large,
// see liblinearBias), which stops on the same gradient rule: on the objective
// they share (mean log loss + ‖w‖²/2n), Stratus's weights must be as good to
// within 3e-4 (relative: the rule stops both short of the optimum, at points
// of their own paths — heart_scale's are 1.1e-4 apart), and their test log
// loss within 0.2% of liblinear's.
func TestNewtonAgreesWithLiblinear(t *testing.T) {
	for _, c := range []struct {
		name, train, test string
		features          int
	}{
		{"heart_scale", "heart_scale", "heart_scale", 13},
		{"a9a", "a9a", "a9a.t", 123},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := liblinear(t, testdata(c.train), c.features)
			h := runtimetest.New(t, `
load "data" {
  source            = "`+testdata(c.train)+`"
  validation_source = "`+testdata(c.train)+`"
  test_source       = "`+testdata(c.test)+`"
}

train "lr" {
  input = load.data
}

output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
			sum, rec := h.MustApply()
			a, w32 := readModel(t, h, sum)
			if a.Solver != "newton" || len(w32) != c.features+1 {
				t.Fatalf("model trained by %q with %d coordinates; want newton, %d", a.Solver, len(w32), c.features+1)
			}
			notes := strings.Join(rec.Notes("train.lr"), "\n")
			if !strings.Contains(notes, "solver newton (auto: ") || !strings.Contains(notes, "stopped (converged)") {
				t.Errorf("notes do not show the solver, why, and that it converged:\n%s", notes)
			}
			w := make([]float64, len(w32))
			for i, x := range w32 {
				w[i] = float64(x)
			}
			tr, te := readSparse(t, testdata(c.train)), readSparse(t, testdata(c.test))
			lambda := 1 / float64(len(tr.y))
			f, fRef := tr.objective(w, lambda), tr.objective(ref, lambda)
			ll, llRef := te.logloss(w), te.logloss(ref)
			t.Logf("objective %.8f, liblinear's weights %.8f; test logloss %.6f, liblinear %.6f (reported %.6f)", f, fRef, ll, llRef, metric(t, sum, "test_logloss"))
			if f > fRef*(1+3e-4) {
				t.Errorf("objective %.8f, liblinear's weights reach %.8f: want at most that (+3e-4 relative)", f, fRef)
			}
			if math.Abs(ll-llRef) > 0.002*llRef {
				t.Errorf("test logloss %.6f, liblinear's %.6f: want within 0.2%%", ll, llRef)
			}
			if got := metric(t, sum, "test_logloss"); math.Abs(got-ll) > 1e-4*ll {
				t.Errorf("reported test logloss %.6f, the model's weights give %.6f", got, ll)
			}
		})
	}
}

// TestNewtonLinearSVM trains linear_svm on heart_scale with the defaults —
// trust-region Newton on the squared hinge's generalised Hessian, as liblinear
// -s 2 — and checks its objective against generalised Newton with backtracking
// computed in the test. Both stop short of the optimum (Stratus on liblinear's
// gradient rule), so the objective must be within 1e-3 of it, relative, as
// for L-BFGS (TestLinearSVMReachesNewtonOptimum).
func TestNewtonLinearSVM(t *testing.T) {
	h := runtimetest.New(t, `
load "heart" {
  source            = "`+testdata("heart_scale")+`"
  validation_source = "`+testdata("heart_scale")+`"
}

train "svm" {
  input = load.heart
  model = "linear_svm"
}

output "metrics" { value = train.svm.metrics }
output "model"   { value = train.svm.model }
`)
	sum, _ := h.MustApply()
	a, w32 := readModel(t, h, sum)
	if a.Solver != "newton" {
		t.Fatalf("solver %q, want newton (auto)", a.Solver)
	}
	_, _, f, fRef := heartSVMObjective(t, w32)
	t.Logf("objective %.8f, generalised Newton's %.8f", f, fRef)
	if f-fRef > 1e-3*fRef || f < fRef-1e-7 {
		t.Errorf("objective %.8f, want within 1e-3 of the reference optimum %.8f", f, fRef)
	}
}

// TestNewtonHessianVectorWaves trains heart_scale with its features hashed
// into 2^9 and 2^12 slots (models of 513 and 4097 coordinates, over the
// Hessian limit: every CG step is a wave of Hessian-vector tasks, inline and
// through psstore) and checks the objective — from the model's predictions and
// weights — against Newton's optimum of the unhashed problem computed in the
// test: 13 features hashed without collision are the same problem — also when
// no function holds the curvature its gradient task left (a cold Lambda
// function), so each Hessian-vector task computes it again. Within
// 1e-3 (relative) as the solver stops on liblinear's gradient rule; a wrong
// product in any wave gets nowhere near.
func TestNewtonHessianVectorWaves(t *testing.T) {
	xs, ys := readLIBSVM(t, testdata("heart_scale"), 13)
	lambda := 1 / float64(len(xs))
	fRef, _, _ := objective(xs, ys, newton(xs, ys, 14, lambda), lambda)
	for _, c := range []struct {
		bits   int
		cached bool
	}{{9, true}, {12, true}, {9, false}} {
		bits := c.bits
		name := strconv.Itoa(bits)
		if !c.cached { // every Hessian-vector task computes the curvature again
			name += "/uncached"
		}
		t.Run(name, func(t *testing.T) {
			if !c.cached {
				defer train.SetCurvatureCache(0)()
			}
			h := runtimetest.New(t, `
load "heart" {
  source            = "`+testdata("heart_scale")+`"
  validation_source = "`+testdata("heart_scale")+`"
  hash_bits         = `+strconv.Itoa(bits)+`
}

train "lr" {
  input  = load.heart
  solver = "newton"
}

output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
			sum, rec := h.MustApply()
			a, w32 := readModel(t, h, sum)
			if a.Solver != "newton" || len(w32) != 1<<bits+1 {
				t.Fatalf("solver %q, %d coordinates; want newton, %d", a.Solver, len(w32), 1<<bits+1)
			}
			notes := strings.Join(rec.Notes("train.lr"), "\n")
			if !strings.Contains(notes, "gradient and Hessian-vector tasks") || !strings.Contains(notes, "stopped (converged)") {
				t.Errorf("notes do not show Hessian-vector waves and convergence:\n%s", notes)
			}
			probs := strings.Fields(string(predict(t, h, sum.Outputs["model"].AsString(), testdata("heart_scale"))))
			if len(probs) != len(ys) {
				t.Fatalf("%d predictions for %d rows", len(probs), len(ys))
			}
			var f float64
			for r, s := range probs {
				p, err := strconv.ParseFloat(s, 64)
				if err != nil {
					t.Fatalf("prediction %q: %v", s, err)
				}
				if ys[r] > 0 {
					f -= math.Log(p)
				} else {
					f -= math.Log(1 - p)
				}
			}
			f /= float64(len(ys))
			for _, x := range w32[:len(w32)-1] {
				f += lambda / 2 * float64(x) * float64(x)
			}
			t.Logf("objective %.8f, Newton's on the unhashed features %.8f", f, fRef)
			if f-fRef > 1e-3*fRef || f < fRef-1e-6 {
				t.Errorf("objective %.8f, want within 1e-3 of Newton's optimum %.8f", f, fRef)
			}
		})
	}
}

// TestNewtonEpochsInCG: the pass budget (epochs) counts Hessian-vector waves
// and ends a CG loop between them: with hashed heart_scale (CG steps are waves)
// and epochs = 4, training stops on epochs after exactly 4 passes, with the
// weights of the last accepted iterate.
func TestNewtonEpochsInCG(t *testing.T) {
	h := runtimetest.New(t, `
load "heart" {
  source            = "`+testdata("heart_scale")+`"
  validation_source = "`+testdata("heart_scale")+`"
  hash_bits         = 9
}

train "lr" {
  input  = load.heart
  solver = "newton"
  epochs = 4
}

output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
	_, rec := h.MustApply()
	notes := strings.Join(rec.Notes("train.lr"), "\n")
	if !regexp.MustCompile(`stopped \(epochs\) after [^:]*: newton, [01] iterations, 4 passes`).MatchString(notes) {
		t.Errorf("notes do not say it stopped on epochs after 4 passes:\n%s", notes)
	}
}
