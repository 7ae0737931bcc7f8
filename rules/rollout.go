package rules

// Rollout: a rule with rollout p% counts for a transaction when the
// transaction's bucket for that rule, 0..9999, is below p×100. The bucket
// is a hash of the transaction id mixed with the rule name: the same
// transaction always gets the same answer (retries, replays, rule tests),
// raising p only adds transactions, and two rules at the same percentage
// do not pick the same transactions.

// hashID hashes a transaction id (FNV-1a, 32 bits).
func hashID(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return h
}

// rolloutBucket mixes the rule name into the id hash and finalizes it
// (murmur3's mixer), giving 0..9999.
func rolloutBucket(idHash uint32, rule string) uint32 {
	h := idHash ^ 0x9e3779b9
	for i := 0; i < len(rule); i++ {
		h ^= uint32(rule[i])
		h *= 16777619
	}
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h % 10000
}

// InRollout reports whether a transaction id falls inside a rule's rollout.
func (r *Rule) InRollout(id string) bool {
	return r.rollout >= 10000 || rolloutBucket(hashID(id), r.Name) < r.rollout
}
