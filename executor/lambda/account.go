package lambda

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
)

// AccountConcurrency reads the account's concurrency limit in region with
// Lambda's GetAccountSettings: the unreserved concurrent executions the
// functions of this account may have (AccountLimit.UnreservedConcurrentExecutions,
// else ConcurrentExecutions). It gives up after 5 seconds, so that a plan
// without AWS credentials does not wait on the metadata service.
func AccountConcurrency(ctx context.Context, region string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var lo []func(*config.LoadOptions) error
	if region != "" {
		lo = append(lo, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return 0, fmt.Errorf("load AWS configuration: %w", err)
	}
	out, err := awslambda.NewFromConfig(cfg).GetAccountSettings(ctx, &awslambda.GetAccountSettingsInput{})
	if err != nil {
		return 0, fmt.Errorf("GetAccountSettings: %w", err)
	}
	if out.AccountLimit == nil {
		return 0, errors.New("GetAccountSettings returned no account limit")
	}
	if n := out.AccountLimit.UnreservedConcurrentExecutions; n != nil && *n > 0 {
		return int(*n), nil
	}
	if n := out.AccountLimit.ConcurrentExecutions; n > 0 {
		return int(n), nil
	}
	return 0, errors.New("GetAccountSettings returned a concurrency limit of 0")
}
