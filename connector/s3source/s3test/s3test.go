// Package s3test gives tests the S3 server of IMGVEC_TEST_S3_ENDPOINT,
// IMGVEC_TEST_S3_ACCESS_KEY_ID and IMGVEC_TEST_S3_SECRET_ACCESS_KEY
// (`make services` starts SeaweedFS and writes them to
// .cache/services.env) and one fresh bucket per test. Without them a test
// skips (fails under CI=true, schema/testenv).
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/imgvec/imgvec/schema/testenv"
)

// Server is the test S3 server.
type Server struct {
	Endpoint        string
	AccessKeyID     string
	SecretAccessKey string
	Client          *s3.Client
}

// Credentials are the server's static credentials.
func (s Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, "")
}

// Env returns the AWS environment variables that give a child process the
// server's credentials.
func (s Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
}

// Open returns the server, or skips the test when it is not configured.
func Open(t testing.TB) Server {
	t.Helper()
	s := Server{Endpoint: os.Getenv("IMGVEC_TEST_S3_ENDPOINT"), AccessKeyID: os.Getenv("IMGVEC_TEST_S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("IMGVEC_TEST_S3_SECRET_ACCESS_KEY")}
	if s.Endpoint == "" || s.AccessKeyID == "" || s.SecretAccessKey == "" {
		testenv.Skip(t, "IMGVEC_TEST_S3_ENDPOINT/_ACCESS_KEY_ID/_SECRET_ACCESS_KEY not set: run `make services` (SeaweedFS) and `set -a; source .cache/services.env; set +a`")
	}
	s.Client = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: s.Credentials(), RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	return s
}

// Ref returns the s3:// reference of prefix in bucket on this server.
func (s Server) Ref(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&region=us-east-1&path_style=true"
}

// Bucket creates a bucket with a fresh name and removes it, with its
// objects, when the test ends.
func (s Server) Bucket(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "imgvec-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	name = name[:min(len(name), 48)] + "-" + hex.EncodeToString(b)
	name = strings.Trim(strings.ReplaceAll(name, "--", "-"), "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	t.Cleanup(func() { s.removeBucket(t, name) })
	return name
}

func (s Server) removeBucket(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // benchmarks leave 100k objects
	defer cancel()
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("clean up bucket %s: %v", name, err)
			return
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		if _, err := s.Client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			t.Logf("clean up bucket %s: %v", name, err)
			return
		}
	}
	if _, err := s.Client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Logf("clean up bucket %s: %v", name, err)
	}
}

// Put stores an object with optional user metadata.
func (s Server) Put(t testing.TB, bucket, key string, data []byte, meta map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))), Metadata: meta}); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// Delete removes an object.
func (s Server) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("delete %s/%s: %v", bucket, key, err)
	}
}

// PutMultipart stores an object uploaded in parts (each but the last at
// least 5 MiB, the S3 minimum): its ETag is no MD5 ("…-N").
func (s Server) PutMultipart(t testing.TB, bucket, key string, parts ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	up, err := s.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("multipart upload %s/%s: %v", bucket, key, err)
	}
	var done []types.CompletedPart
	for i, p := range parts {
		n := aws.Int32(int32(i + 1))
		out, err := s.Client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key),
			UploadId: up.UploadId, PartNumber: n, Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p)))})
		if err != nil {
			t.Fatalf("upload part %d of %s/%s: %v", i+1, bucket, key, err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: n})
	}
	if _, err := s.Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatalf("complete multipart upload %s/%s: %v", bucket, key, err)
	}
}
