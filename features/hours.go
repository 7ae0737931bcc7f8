package features

// An hour_of_day feature says how unusual the event's hour (UTC) is for
// the entity, from 0 (its busiest hour) to 1 (an hour it never used, nor
// the hours around it). The entity keeps a 24-bin histogram of its past
// events' hours; with c the histogram smoothed over neighbouring hours,
// s(h) = c[h] + (c[h-1] + c[h+1])/2, unusualness = 1 - s(h)/max s. The
// current event is not in its own history. Fewer than min_history past
// events give a missing value. Bins are halved when one would overflow,
// which keeps the shape and ages old habits.
type hourPlan struct {
	filter     int
	minHistory int
	slot       int
	index      int
	sig        string // the state's layout across engines: the filter
}

type hourHist [24]uint16

func (p *hourPlan) unusualness(h *hourHist, t uint32) (float64, bool) {
	if h == nil {
		return 0, false
	}
	total := 0
	for _, c := range h {
		total += int(c)
	}
	if total < p.minHistory {
		return 0, false
	}
	s := func(i int) float64 {
		return float64(h[i]) + (float64(h[(i+23)%24])+float64(h[(i+1)%24]))/2
	}
	best := 0.0
	for i := range h {
		best = max(best, s(i))
	}
	return 1 - s(int(t/3600%24))/best, true
}

func (p *hourPlan) record(h *hourHist, t uint32) {
	i := t / 3600 % 24
	if h[i] == 1<<16-1 {
		for j := range h {
			h[j] /= 2
		}
	}
	h[i]++
}
