//go:build race

package main

// raceDetector tells tests whether -race is on: slow replays skip under it.
const raceDetector = true
