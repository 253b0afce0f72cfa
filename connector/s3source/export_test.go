package s3source

import "github.com/aws/aws-sdk-go-v2/service/s3"

// Client is the source's S3 client, for measurements against a bare loop.
func Client(s *Source) *s3.Client { return s.client }
