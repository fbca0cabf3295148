package normalize

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Schema is the `normalize` block.
var Schema = &operators.Schema{
	Name:    "normalize",
	Version: 3, // 2: hashed categorical slots are left unscaled; 3: validation sets
	Doc:     "Scales features with statistics of the training set; the test set is scaled with the same statistics.",
	Attrs: []operators.Attr{
		{Name: "input", Type: cty.DynamicPseudoType, Required: true,
			Doc: "A stage with train and test datasets, such as load.adult."},
		{Name: "method", Type: cty.String, Required: true, Enum: []string{"min_max", "standard"},
			Doc: "min_max scales to range; standard scales to unit variance (and zero mean with center). Numeric features only: hashed categorical slots (criteo, csv) stay 0/1 indicators."},
		{Name: "range", Type: cty.List(cty.Number), Default: cty.ListVal([]cty.Value{cty.NumberIntVal(0), cty.NumberIntVal(1)}),
			Doc: "min_max only: the target interval [lo, hi].",
			Check: func(v cty.Value) error {
				if !v.IsWhollyKnown() {
					return nil
				}
				if v.LengthInt() != 2 {
					return fmt.Errorf("range must have two numbers, [lo, hi]; got %d", v.LengthInt())
				}
				loV, hiV := v.Index(cty.NumberIntVal(0)), v.Index(cty.NumberIntVal(1))
				if loV.IsNull() || hiV.IsNull() {
					return fmt.Errorf("range must have two numbers, [lo, hi]; it holds null")
				}
				lo, _ := loV.AsBigFloat().Float64()
				hi, _ := hiV.AsBigFloat().Float64()
				if !(lo < hi) {
					return fmt.Errorf("range must have lo < hi; got [%g, %g]", lo, hi)
				}
				return nil
			}},
		{Name: "center", Type: cty.Bool, Default: cty.False,
			Doc: "standard only: subtract the mean, which turns sparse zeros into non-zeros."},
	},
	Check: func(cfg cty.Value) []operators.Problem {
		m, c := cfg.GetAttr("method"), cfg.GetAttr("center")
		if m.IsKnown() && !m.IsNull() && m.AsString() == "min_max" && c.IsKnown() && !c.IsNull() && c.True() {
			return []operators.Problem{{Attr: "center", Summary: "Argument does not apply to min_max",
				Detail: "center applies to method = \"standard\" only; min_max always maps the minimum to the low end of range."}}
		}
		return nil
	},
	Outputs: map[string]cty.Type{
		"train":      operators.DatasetType,
		"test":       operators.DatasetType,
		"validation": operators.DatasetType,
		"rows":       cty.Number,
		"features":   cty.Number,
	},
}
