package features

import "hash/maphash"

// entityKey turns an event into the keyed 64-bit hash of its entity (one
// field, or a composite of two). Raw keys are never stored: entity kinds
// and label_rate plans index their state by this hash.
type entityKey struct {
	parts []fieldSpec
	seeds []maphash.Seed
}

func newEntityKey(paths []string) entityKey {
	var k entityKey
	for _, p := range paths {
		fs, _ := lookupField(p) // validated with the definition
		k.parts = append(k.parts, fs)
		k.seeds = append(k.seeds, maphash.MakeSeed())
	}
	return k
}

// of hashes the event's key; ok false when a part is missing.
func (k *entityKey) of(c *evctx) (uint64, bool) {
	h0, ok := k.parts[0].hash(c, k.seeds[0])
	if !ok {
		return 0, false
	}
	if len(k.parts) == 1 {
		return h0, true
	}
	h1, ok := k.parts[1].hash(c, k.seeds[1])
	if !ok {
		return 0, false
	}
	return mix64(h0 ^ (h1<<23 | h1>>41) ^ 0x9e3779b97f4a7c15), true
}
