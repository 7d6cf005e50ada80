/**
 * cdk-nag (v3) acknowledgements that name one finding exactly. cdk-nag reports each wildcard of a
 * policy as its own finding, `AwsSolutions-IAM5[Resource::<flattened resource>]`, so an
 * acknowledgement must spell the resource the way cdk-nag flattens it: we use cdk-nag's own
 * flattening, so the two cannot disagree.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

/** Acknowledges AwsSolutions-IAM5 for one wildcard `resource` in policies under `scope`. */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  const flat = flattenCfnReference(Stack.of(scope).resolve(resource));
  Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Resource::${flat}]`, reason });
}

/** Acknowledges AwsSolutions-IAM5 for one wildcard `action` (e.g. `kms:GenerateDataKey*`) under `scope`. */
export function acknowledgeWildcardAction(scope: IConstruct, action: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Action::${action}]`, reason });
}
