package bench

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// memorySink keeps the chase from being optimized away.
var memorySink uint32

// BenchmarkMemoryLatency is the memory's baseline for the features
// benchmarks: one dependent load at a random place at a time (a pointer
// chase through a random cycle, one 64-byte line per step, as reading an
// entity, a series or a set that is not in cache does), in 1 MiB (L2),
// 16 MiB (L3) and 2 GiB (the size of the 4 × 1M-entity state: DRAM, and
// a TLB miss on most steps with 4 KiB pages). ns/op is the latency of
// one such load; an event of BenchmarkFeaturesObserve costs its compute
// (BenchmarkFeaturesCompute) plus a few of these.
func BenchmarkMemoryLatency(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20, 2 << 30} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			const line = 16 // uint32s per 64-byte line
			lines := size / 64
			buf := make([]uint32, lines*line)
			// Every line links to the next in a random order: one cycle,
			// so the chase visits every line before it repeats.
			perm := make([]uint32, lines)
			for i := range perm {
				perm[i] = uint32(i)
			}
			rng := rand.New(rand.NewPCG(7, 7))
			rng.Shuffle(lines, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			for i := range perm {
				buf[int(perm[i])*line] = perm[(i+1)%lines]
			}
			perm = nil
			p := uint32(0)
			for range min(lines, 1<<22) { // warm the caches and the TLB as far as they go
				p = buf[int(p)*line]
			}
			b.ResetTimer()
			for range b.N {
				p = buf[int(p)*line]
			}
			memorySink = p
		})
	}
}
