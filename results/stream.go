package results

import (
	"errors"
	"io"
	"sync"

	"github.com/taskotron-go/taskotron/contract"
)

// StreamTAP reads TAP13 from r as it comes and hands each result to emit,
// holding a few megabytes of tests at a time (see pipeline): a stream of
// any length is read in constant memory. The Output it returns has no
// Results. emit's error stops the read and is returned.
func StreamTAP(r io.Reader, d Defaults, emit func(contract.Result) error) (Output, error) {
	var out Output
	readErr, emitErr := pipeline(func(send func(contract.Result, int) error) error {
		var err error
		out, err = readTAP(r, d, send)
		return err
	}, emit)
	if emitErr != nil {
		return out, emitErr
	}
	return out, readErr
}

// pipeline runs read in a goroutine of its own, which sends results, with
// the bytes each was read from, to emit in the caller's goroutine, in
// order, each once: results are read and decoded while emit (writing them
// down, or posting them) takes those read before, so on two cores a
// 100 MB stream takes the time of the slower half, not of both. emit's
// first error stops read (its send fails) and is returned as emitErr; a
// panic in read is the caller's.
//
// Results go over in chunks of pipeChunk results or pipeChunkBytes,
// whichever comes first: few enough handovers that they cost nothing
// beside the results, and a window (a chunk being read, one waiting, one at
// emit) of a few megabytes however large each result is; one result larger
// than that is held alone, as it must be.
func pipeline(read func(send func(contract.Result, int) error) error, emit func(contract.Result) error) (readErr, emitErr error) {
	chunks := make(chan []contract.Result, 1)
	// Chunks come back to be filled again: a new one each time was most
	// of what a stream of small results allocated.
	free := make(chan []contract.Result, 3)
	stop := make(chan struct{})
	var panicked any
	go func() {
		defer close(chunks)
		defer func() { panicked = recover() }()
		chunk, size := make([]contract.Result, 0, pipeChunk), 0
		flush := func() error {
			select {
			case chunks <- chunk:
			case <-stop:
				return errStopped
			}
			select {
			case chunk = <-free:
				chunk = chunk[:0]
			default:
				chunk = make([]contract.Result, 0, pipeChunk)
			}
			size = 0
			return nil
		}
		readErr = read(func(res contract.Result, n int) error {
			chunk, size = append(chunk, res), size+n
			if len(chunk) < pipeChunk && size < pipeChunkBytes {
				return nil
			}
			return flush()
		})
		// What was read before an error goes too: a broken TAP stream's
		// readable results stay, beside the error that says what was wrong.
		if len(chunk) > 0 && !errors.Is(readErr, errStopped) {
			if err := flush(); err != nil {
				readErr = err
			}
		}
	}()
	halt := sync.OnceFunc(func() { close(stop) }) // read ends at its next chunk
	// However emit ends, a panic included, read ends and is waited for:
	// nothing is left reading a file nobody wants.
	defer func() {
		halt()
		for range chunks {
		}
	}()
	for chunk := range chunks {
		for _, res := range chunk {
			if emitErr != nil {
				break
			}
			if emitErr = emit(res); emitErr != nil {
				halt()
			}
		}
		clear(chunk) // a reused chunk holds no result's details past its turn
		select {
		case free <- chunk:
		default:
		}
	}
	if panicked != nil {
		panic(panicked)
	}
	return readErr, emitErr
}

const (
	pipeChunk      = 64
	pipeChunkBytes = 1 << 20
)

var errStopped = errors.New("results: the reader was stopped")
