// Package contract holds the maps that cross every stage boundary of the
// pipeline (design §2): bus message, message data, job, runner input,
// execution, result, ResultsDB post and Bodhi comment.
//
// Each type has named fields for the keys the design fixes and keeps every
// other key in Extra, so a map read from JSON and written back comes out with
// the same keys and values: stages may add keys, never lose them.
package contract
