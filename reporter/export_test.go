package reporter

// PostBatch is postBatch, for the batch tests outside the package.
const PostBatch = postBatch
