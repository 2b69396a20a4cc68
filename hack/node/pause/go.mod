module logpipeline.local/pause

go 1.24
