package connector

// SetSpillBudgets sets every memory budget of the diff and of StoredSorter
// to n bytes until the returned function restores them: with a tiny n
// every spill goes through the disk.
func SetSpillBudgets(n int) (restore func()) {
	old := [...]int{lateRunBytes, passedRunBytes, idRunBytes, storedSortRunBytes}
	lateRunBytes, passedRunBytes, idRunBytes, storedSortRunBytes = n, n, n, n
	return func() { lateRunBytes, passedRunBytes, idRunBytes, storedSortRunBytes = old[0], old[1], old[2], old[3] }
}

// ContainsKey exposes Shard.containsKey.
func (s Shard) ContainsKey(source, key string) bool { return s.containsKey(source, key) }
