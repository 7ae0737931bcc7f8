package features

import "math"

// A travel feature is the speed, in km/h, implied by this event's location
// and the entity's previous located event: great-circle distance over the
// time between them. The time is floored at MinTravelInterval, so that two
// events in the same minute from far apart give a large finite speed
// rather than infinity. The previous located event is the one with the
// newest time recorded so far (for a late event, possibly a later one: the
// speed is symmetric).
type travelPlan struct {
	loc   func(*evctx) (lat, lon float64, ok bool)
	slot  int
	index int
	sig   string // the state's layout across engines: the location
}

// MinTravelInterval floors the time between two located events.
const MinTravelInterval = 60 // seconds

type travelState struct {
	lat, lon float32
	t        uint32
	ok       bool
}

func (p *travelPlan) speed(s *travelState, t uint32, lat, lon float64) (float64, bool) {
	if s == nil || !s.ok {
		return 0, false
	}
	km := haversineKm(float64(s.lat), float64(s.lon), lat, lon)
	dt := math.Abs(float64(t) - float64(s.t))
	return km / (math.Max(dt, MinTravelInterval) / 3600), true
}

func (p *travelPlan) record(s *travelState, t uint32, lat, lon float64) {
	if !s.ok || t >= s.t {
		*s = travelState{lat: float32(lat), lon: float32(lon), t: t, ok: true}
	}
}

// EarthRadiusKm is the mean Earth radius used for great-circle distances.
const EarthRadiusKm = 6371.0088

// haversineKm is the great-circle distance between two points in degrees.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * EarthRadiusKm * math.Asin(math.Sqrt(math.Min(1, a)))
}
