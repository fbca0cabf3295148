package state

import (
	"encoding/json"
	"fmt"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// typedValue is a cty value with its type, as stored.
type typedValue struct {
	Type  json.RawMessage `json:"type"`
	Value json.RawMessage `json:"value"`
}

// EncodeValue encodes a known cty value with its type, so it decodes to the same
// value and type.
func EncodeValue(v cty.Value) (json.RawMessage, error) {
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("cannot store a value that is not fully known")
	}
	t, err := ctyjson.MarshalType(v.Type())
	if err != nil {
		return nil, err
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, err
	}
	return json.Marshal(typedValue{Type: t, Value: b})
}

// DecodeValue decodes what EncodeValue encoded.
func DecodeValue(raw json.RawMessage) (cty.Value, error) {
	var tv typedValue
	if err := json.Unmarshal(raw, &tv); err != nil {
		return cty.NilVal, fmt.Errorf("decode stored value: %w", err)
	}
	t, err := ctyjson.UnmarshalType(tv.Type)
	if err != nil {
		return cty.NilVal, fmt.Errorf("decode stored type: %w", err)
	}
	v, err := ctyjson.Unmarshal(tv.Value, t)
	if err != nil {
		return cty.NilVal, fmt.Errorf("decode stored value: %w", err)
	}
	return v, nil
}

// PlainJSON renders a stored value as plain JSON (without its type), for -json
// output.
func PlainJSON(raw json.RawMessage) (json.RawMessage, error) {
	var tv typedValue
	if err := json.Unmarshal(raw, &tv); err != nil {
		return nil, fmt.Errorf("decode stored value: %w", err)
	}
	return tv.Value, nil
}
