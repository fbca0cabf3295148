package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
)

// sharedCacheBuckets are the buckets the scripts in testdata/sharedcache name in
// their stratus blocks (an HCL setting is a literal, so each script has its own).
var sharedCacheBuckets = []string{"teammates", "cache-errors", "cache-corrupt", "cache-lazy"}

// TestSharedCacheScripts runs the scripts in testdata/sharedcache against one
// MinIO server the test starts: teammates' pipeline directories sharing a stage
// cache on a bucket, as users meet it. The scripts get the server's endpoint and
// credentials in the AWS environment, and commands to time a program (timed,
// ratio), to compare outputs that name each pipeline's own directory (unroot),
// to damage the cache behind Stratus's back (cache-tamper), and to list what it
// holds (cache-objects).
func TestSharedCacheScripts(t *testing.T) {
	srv := miniotest.Start(t)
	for _, b := range sharedCacheBuckets {
		srv.CreateBucket(t, b)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/sharedcache",
		UpdateScripts:       os.Getenv("STRATUS_UPDATE_SCRIPTS") != "",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
			env.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
			env.Setenv("AWS_REGION", srv.Region)
			env.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
			env.Setenv("SAVED_ENDPOINT", srv.Endpoint)
			env.Setenv("SAVED_SECRET", srv.SecretKey)
			env.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			env.Setenv("TESTDATA", repoTestdata(t))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":        cmdStatus,
			"timed":         cmdTimed,
			"ratio":         cmdRatio,
			"unroot":        cmdUnroot,
			"cache-tamper":  func(ts *testscript.TestScript, neg bool, args []string) { cmdCacheTamper(ts, neg, args, srv) },
			"cache-objects": func(ts *testscript.TestScript, neg bool, args []string) { cmdCacheObjects(ts, neg, args, srv) },
		},
	})
}

func repoTestdata(t *testing.T) string {
	abs, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return abs + "/../../testdata"
}

// cmdTimed runs a program as exec does and sets VAR to its wall time in seconds:
// timed VAR PROGRAM ARGS...
func cmdTimed(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: timed VAR PROGRAM [ARGS...]")
	}
	began := time.Now()
	err := ts.Exec(args[1], args[2:]...)
	ts.Setenv(args[0], strconv.FormatFloat(time.Since(began).Seconds(), 'f', 3, 64))
	if (err != nil) != neg {
		ts.Fatalf("%s: %v", args[1], err)
	}
}

// cmdRatio logs B/A of two timed figures, a report rather than an assertion
// (wall time depends on the machine's load): ratio A B.
func cmdRatio(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: ratio A B")
	}
	a, err := strconv.ParseFloat(ts.Getenv(args[0]), 64)
	ts.Check(err)
	b, err := strconv.ParseFloat(ts.Getenv(args[1]), 64)
	ts.Check(err)
	msg := fmt.Sprintf("%s %.3fs, %s %.3fs: %.1f%%", args[0], a, args[1], b, 100*b/a)
	ts.Logf("shared cache timing: %s", msg)
}

// cmdUnroot replaces the absolute path of DIR in FILE by <dir>, so that outputs
// naming each teammate's own blob store compare equal: unroot FILE DIR.
func cmdUnroot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: unroot FILE DIR")
	}
	fn := ts.MkAbs(args[0])
	b, err := os.ReadFile(fn)
	ts.Check(err)
	ts.Check(os.WriteFile(fn, bytes.ReplaceAll(b, []byte(ts.MkAbs(args[1])), []byte("<dir>")), 0o644))
}

// cmdCacheTamper damages a shared cache behind Stratus's back, as a broken upload
// or a careless hand would: cache-tamper BUCKET PREFIX object flips a byte of
// the largest object; cache-tamper BUCKET PREFIX record truncates every entry. It
// prints the keys it changed.
func cmdCacheTamper(ts *testscript.TestScript, neg bool, args []string, srv *miniotest.Server) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: cache-tamper BUCKET PREFIX object|record")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := srv.Client()
	bucket, prefix := args[0], strings.Trim(args[1], "/")+"/"
	sub := map[string]string{"object": "objects/", "record": "entries/"}[args[2]]
	if sub == "" {
		ts.Fatalf("cache-tamper: %q is neither object nor record", args[2])
	}
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix + sub)})
	ts.Check(err)
	var keys []string
	var largest int64 = -1
	for _, o := range list.Contents {
		switch {
		case sub == "entries/":
			keys = append(keys, *o.Key)
		case aws.ToInt64(o.Size) > largest:
			keys, largest = []string{*o.Key}, aws.ToInt64(o.Size)
		}
	}
	if len(keys) == 0 {
		ts.Fatalf("cache-tamper: nothing under s3://%s/%s%s", bucket, prefix, sub)
	}
	for _, k := range keys {
		out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &k})
		ts.Check(err)
		var buf bytes.Buffer
		_, err = buf.ReadFrom(out.Body)
		out.Body.Close()
		ts.Check(err)
		b := buf.Bytes()
		if sub == "entries/" {
			b = b[:len(b)/2]
		} else {
			b[len(b)/2] ^= 0xff
		}
		_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &k, Body: bytes.NewReader(b)})
		ts.Check(err)
		fmt.Fprintln(ts.Stdout(), strings.TrimPrefix(k, prefix))
	}
}

// cmdCacheObjects prints every object of a shared cache, key and size, one a line
// in key order, and a count of entries and objects: cache-objects BUCKET PREFIX.
func cmdCacheObjects(ts *testscript.TestScript, neg bool, args []string, srv *miniotest.Server) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cache-objects BUCKET PREFIX")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket, prefix := args[0], strings.Trim(args[1], "/")+"/"
	p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	counts := map[string]int{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		ts.Check(err)
		for _, o := range page.Contents {
			k := strings.TrimPrefix(*o.Key, prefix)
			kind, _, _ := strings.Cut(k, "/")
			counts[kind]++
			fmt.Fprintf(ts.Stdout(), "%s %d\n", k, aws.ToInt64(o.Size))
		}
	}
	fmt.Fprintf(ts.Stdout(), "entries %d objects %d\n", counts["entries"], counts["objects"])
}
