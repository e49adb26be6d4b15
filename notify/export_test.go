package notify

// FreshSchema is a new schema in the PostgreSQL test database, for the
// process tests of package notify_test.
var FreshSchema = freshSchema
